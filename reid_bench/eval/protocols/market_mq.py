"""Market-1501 multiple query: query features pooled over the same identity's gt_bbox images."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...core.registry import PROTOCOLS
from ...data.base import Sample
from .._tensor import check_choice
from ._common import EvalContext, EvalResult, Protocol, embed_split, ids, rank_by_ids


def pool_multi_query(q_ids: tuple[torch.Tensor, torch.Tensor], mq: Sequence[Sample],
                     mqf: torch.Tensor, qf: torch.Tensor, pooling: str) -> tuple[torch.Tensor, int]:
    """Each query's feature pooled (``pooling``: "avg" or "max") over the multi-query images
    ``mq`` (features ``mqf``) with its (id, camera); queries without any keep their own feature
    ``qf`` (their count is returned)."""
    mp, mc = ids(mq)
    ncam = int(max(int(mc.max()), int(q_ids[1].max()))) + 1
    mkey = mp * ncam + mc
    qkey = q_ids[0] * ncam + q_ids[1]
    uk, inv = torch.unique(mkey, return_inverse=True)
    inv = inv.to(mqf.device)
    dim = mqf.shape[1]
    pooled = torch.zeros((uk.numel(), dim), dtype=mqf.dtype, device=mqf.device)
    reduce = "mean" if pooling == "avg" else "amax"
    pooled = pooled.scatter_reduce(0, inv[:, None].expand(-1, dim), mqf, reduce=reduce,
                                   include_self=False)
    pos = torch.searchsorted(uk, qkey).clamp(max=uk.numel() - 1)
    found = uk[pos] == qkey
    out = qf.clone()
    out[found.to(qf.device)] = pooled[pos[found].to(qf.device)]
    return out, int((~found).sum())


@PROTOCOLS.register("market_mq")
class MarketMultiQuery(Protocol):
    description = ("Market-1501 multiple query: each query's feature pooled over the gt_bbox "
                   "images of the same identity in the same camera (pooling: avg or max), then "
                   "ranked like single query")
    splits = ("query", "mq_query", "gallery")
    options = {"pooling": "avg"}

    def evaluate(self, dataset, embed, ctx: EvalContext) -> EvalResult:
        pooling = ctx.options["pooling"]
        check_choice("pooling", pooling, ("avg", "max"))
        q, mq, g = (dataset.splits[s] for s in ("query", "mq_query", "gallery"))
        qf = embed_split(embed, q, ctx.device, "query")
        mqf = embed_split(embed, mq, ctx.device, "mq_query")
        q_ids = ids(q)
        qf, alone = pool_multi_query(q_ids, mq, mqf, qf, pooling)
        gf = embed_split(embed, g, ctx.device, "gallery")
        return self.result(rank_by_ids(qf, gf, q_ids, ids(g), ctx), ctx,
                           queries_without_multi_query_images=alone)
