"""Oxford5k retrieval mAP (Philbin et al., CVPR 2007), scored like the official ``compute_ap``."""

from __future__ import annotations

from pathlib import Path

from ...core.registry import PROTOCOLS
from ..metrics import evaluate_relevance
from ..ranking import relevance_from_lists
from ._common import EvalContext, EvalResult, Protocol, embed_split, ranking_distance


@PROTOCOLS.register("oxford5k")
class Oxford5k(Protocol):
    description = ("Oxford5k retrieval mAP: bbox-cropped queries against all images; good+ok "
                   "are positives, junk ignored, as the official compute_ap")
    splits = ("query", "gallery")
    meta = ("oxford_gt",)
    metrics = ("mAP",)

    def evaluate(self, dataset, embed, ctx: EvalContext) -> EvalResult:
        gt = dataset.meta["oxford_gt"]
        q, g = dataset.splits["query"], dataset.splits["gallery"]
        if len(gt) != len(q):
            raise ValueError(f"oxford5k: {len(gt)} ground-truth entries but {len(q)} query "
                             "samples")
        names = {Path(s.path).stem: i for i, s in enumerate(g)}
        pos, junk, missing = [], [], 0
        for e in gt:
            p = [names[n] for n in (set(e["good"]) | set(e["ok"])) if n in names]
            j = [names[n] for n in e["junk"] if n in names]
            missing += len(set(e["good"]) | set(e["ok"]) | set(e["junk"])) - len(p) - len(j)
            pos.append(p)
            junk.append(j)
        qf = embed_split(embed, q, ctx.device, "query")
        gf = embed_split(embed, g, ctx.device, "gallery")
        rel = relevance_from_lists(len(q), len(g), pos, junk)
        res = evaluate_relevance(ranking_distance(qf, gf, ctx), rel, max_rank=1, ap=ctx.ap)
        return EvalResult(self.percent(res, 1), None, res.num_queries, res.num_skipped, dict(
            ground_truth_names_not_in_gallery=missing,
            note="official Oxford compute_ap is the trapezoid rule = ap 'market_matlab'"))
