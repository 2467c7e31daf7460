"""Market-1501 single query, and CUHK03 multi-shot scored by the same rules."""

from __future__ import annotations

from ...registry import PROTOCOLS
from ._common import EvalContext, EvalResult, Protocol, embed_split, ids, rank_by_ids


@PROTOCOLS.register("market")
class Market(Protocol):
    description = ("single query: each query ranked against the whole gallery; same id + same "
                   "camera and id -1 are junk, distractors (id 0) are wrong matches")
    splits = ("query", "gallery")

    def evaluate(self, dataset, embed, ctx: EvalContext) -> EvalResult:
        q, g = dataset.splits["query"], dataset.splits["gallery"]
        qf = embed_split(embed, q, ctx.device, "query")
        gf = embed_split(embed, g, ctx.device, "gallery")
        return self.result(rank_by_ids(qf, gf, ids(q), ids(g), ctx), ctx)


@PROTOCOLS.register("cuhk03_multishot")
class CUHK03Multishot(Market):
    description = ("CUHK03 multi-shot: every image of the other camera is in the gallery "
                   "(Market rules)")
