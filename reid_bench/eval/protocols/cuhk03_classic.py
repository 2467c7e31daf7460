"""CUHK03 classic single-shot (Li et al., CVPR 2014): one random gallery image per identity."""

from __future__ import annotations

import math

import numpy as np
import torch

from ...core.registry import PROTOCOLS
from ...data.base import GalleryStats
from ..ap_bounds import MatchBounds
from ..distance import compute_distance
from ..ranking import RankResult
from ._common import EvalContext, EvalResult, Protocol, embed_split, ids


def single_shot_rank(D: torch.Tensor, q_pids, q_camids, g_pids, g_camids, repeats: int,
                     generator: torch.Generator, max_rank: int,
                     ap: str, other_cameras: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """CUHK03 classic single-shot: for each query and repeat, one random valid image per
    gallery identity (not the query's id in the query's camera, not id −1; with
    ``other_cameras`` no image of the query's camera at all) forms the gallery.
    With one true match per query, AP = 1/rank ("standard") or (1/rank + prev)/2 (trapezoid).
    Returns per-repeat CMC (repeats×max_rank), per-repeat mAP, and the skipped-query count."""
    Dc = D.cpu().double()
    Q, G = Dc.shape
    valid = ~((g_pids[None] == q_pids[:, None]) & (g_camids[None] == q_camids[:, None]))
    valid &= (g_pids != -1)[None]
    if other_cameras:  # open-reid's separate_camera_set (queries from both views)
        valid &= g_camids[None] != q_camids[:, None]
    uid, gcls = torch.unique(g_pids, return_inverse=True)
    has_match = ((g_pids[None] == q_pids[:, None]) & valid).any(1)
    cmcs, maps = [], []
    ks = torch.arange(1, max_rank + 1, dtype=torch.float64)
    gidx = torch.arange(G)
    for _ in range(repeats):
        u = torch.rand((Q, G), generator=generator, dtype=torch.float64)
        u = torch.where(valid, u, torch.full_like(u, -1.0))
        best = torch.full((Q, uid.numel()), -1.0, dtype=torch.float64)
        best = best.scatter_reduce(1, gcls[None].expand(Q, -1), u, reduce="amax", include_self=True)
        chosen = valid & (u == best.gather(1, gcls[None].expand(Q, -1)))
        is_match = chosen & (g_pids[None] == q_pids[:, None])
        md = torch.where(is_match, Dc, torch.full_like(Dc, math.inf)).min(1)
        mi = md.indices
        mdist = md.values[:, None]
        wrong = chosen & ~is_match
        before = (wrong & ((Dc < mdist) | ((Dc == mdist) & (gidx[None] < mi[:, None])))).sum(1)
        rank = (before + 1).double()[has_match]
        prec = 1.0 / rank
        if ap == "standard":
            apq = prec
        else:
            apq = (prec + torch.where(rank > 1, torch.zeros_like(rank), torch.ones_like(rank))) / 2
        cmcs.append((rank[:, None] <= ks[None]).double().mean(0).numpy() if rank.numel()
                    else np.zeros(max_rank))
        maps.append(float(apq.mean()) if apq.numel() else 0.0)
    return np.stack(cmcs), np.asarray(maps), int((~has_match).sum())


@PROTOCOLS.register("cuhk03_classic")
class CUHK03Classic(Protocol):
    # One cell evaluates one of the 20 classic partitions (the loader's option ``split``); the
    # report averages over the partitions.
    description = ("CUHK03 classic single-shot: per query and repeat, the gallery holds one "
                   "random image of each identity from another camera; CMC and mAP averaged "
                   "over `repeats` seeded repeats (default 10, as torchreid's eval_cuhk03); the "
                   "report averages over the classic partitions")
    splits = ("query", "gallery")
    options = {"repeats": 10}

    def match_bounds(self, stats: GalleryStats | None) -> MatchBounds | None:
        # Single-shot: one image per gallery identity, so exactly one true match among `ids`.
        return None if stats is None else MatchBounds(1, 1, stats.ids)

    def evaluate(self, dataset, embed, ctx: EvalContext) -> EvalResult:
        repeats = int(ctx.options["repeats"])
        if repeats < 1:
            raise ValueError(f"cuhk03_classic option repeats must be >= 1, got {repeats}")
        if ctx.rerank:
            raise ValueError("re-ranking is not defined for the CUHK03 classic single-shot "
                             "protocol")
        q, g = dataset.splits["query"], dataset.splits["gallery"]
        qf = embed_split(embed, q, ctx.device, "query")
        gf = embed_split(embed, g, ctx.device, "gallery")
        D = compute_distance(qf, gf, ctx.distance, device=ctx.device)
        (qp, qc), (gp, gc) = ids(q), ids(g)
        gen = torch.Generator().manual_seed(ctx.seed)
        cmcs, maps, skipped = single_shot_rank(
            D, qp, qc, gp, gc, repeats, gen, ctx.max_rank, ctx.ap,
            other_cameras=bool(dataset.meta.get("gallery_other_cameras", False)))
        res = RankResult(cmcs.mean(0), float(maps.mean()), np.zeros(0), len(q), skipped)
        return self.result(res, ctx, repeats=repeats, seed=ctx.seed)
