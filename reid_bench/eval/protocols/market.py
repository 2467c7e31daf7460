"""Market-1501 single query, and CUHK03 multi-shot scored by the same rules."""

from __future__ import annotations

from ...core.registry import PROTOCOLS
from ...data.base import GalleryStats
from ..ap_bounds import MatchBounds
from ._common import EvalContext, EvalResult, Protocol, embed_split, ids, rank_by_ids


@PROTOCOLS.register("market")
class Market(Protocol):
    description = ("single query: each query ranked against the whole gallery; same id + same "
                   "camera and id -1 are junk, distractors (id 0) are wrong matches")
    splits = ("query", "gallery")

    def match_bounds(self, stats: GalleryStats | None) -> MatchBounds | None:
        # Every image of the query's id in another camera is a true match.
        return None if stats is None else MatchBounds(*stats.matches, stats.images)

    def evaluate(self, dataset, embed, ctx: EvalContext) -> EvalResult:
        q, g = dataset.splits["query"], dataset.splits["gallery"]
        qf = embed_split(embed, q, ctx.device, "query")
        gf = embed_split(embed, g, ctx.device, "gallery")
        return self.result(rank_by_ids(qf, gf, ids(q), ids(g), ctx), ctx)


@PROTOCOLS.register("cuhk03_multishot")
class CUHK03Multishot(Market):
    description = ("CUHK03 multi-shot: every image of the other camera is in the gallery "
                   "(Market rules)")

    def evaluate(self, dataset, embed, ctx: EvalContext) -> EvalResult:
        if dataset.meta.get("query_view") == "both":
            raise ValueError("cuhk03_multishot ranks each query against the other view: "
                             "query_view 'both' is defined for cuhk03_classic (single-shot) "
                             "only; use query_view 1 or 2")
        return super().evaluate(dataset, embed, ctx)
