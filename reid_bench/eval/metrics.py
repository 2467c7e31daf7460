"""``evaluate_rank``: CMC and mAP of a query × gallery distance matrix (re-id protocols)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ._tensor import as_tensor, check_choice
from .ranking import (
    AP_DEFINITIONS,
    RankResult,
    count_block,
    metrics_from_counts,
    new_counts,
    relevance_from_ids,
    sort_matches,
)

log = logging.getLogger(__name__)

#: Junk rules ``evaluate_rank`` knows. ``market``: same id + same camera and id −1 are junk
#: (Market-1501, DukeMTMC-reID, CUHK03, MSMT17). ``no_camera_filter``: only id −1 is junk;
#: same-camera images of the query's id are true matches.
RANK_PROTOCOLS = ("market", "no_camera_filter")


def evaluate_rank(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any,
                  max_rank: int = 50, ap: str = "standard", protocol: str = "market", *,
                  return_details: bool = False, threads: int | None = None):
    """CMC and mAP of a re-id ranking.

    ``distmat``: Q×G distances (numpy or torch, CPU or CUDA; smaller = more similar).
    ``q_pids``/``g_pids``/``q_camids``/``g_camids``: ids and cameras (1-D, numpy or torch).
    Junk (removed from the ranking): same id and same camera as the query, and id −1.
    Distractors (id 0) are wrong matches. Ties rank the lower gallery index first (a stable
    sort, like the Market-1501 MATLAB code; see ``ranking.py`` for the peers' rule). ``ap``: ``"standard"`` (mean precision at each
    match, torchreid / fast-reid) or ``"market_matlab"`` (trapezoid rule of the official
    Market-1501 ``compute_AP.m``).

    Returns ``(cmc, mAP)``: ``cmc`` a float64 numpy array of length ``max_rank`` with values in
    [0, 1] (entry k = fraction of queries whose first match is within rank k+1; past the end of
    a short gallery it stays at its final value), ``mAP`` a float in [0, 1]. Queries without a
    valid match are skipped (logged); with ``return_details=True`` a ``RankResult`` carrying
    the skipped count and per-query AP is returned instead. ``threads``: worker threads over
    the queries (default: torch's thread count).
    """
    check_choice("ap", ap, AP_DEFINITIONS)
    check_choice("protocol", protocol, RANK_PROTOCOLS)
    D = as_tensor(distmat)
    if D.ndim != 2:
        raise ValueError(f"distmat must be 2-D (queries × gallery), got shape {tuple(D.shape)}")
    if D.dtype not in (torch.float32, torch.float64):
        D = D.float()
    qp, gp = as_tensor(q_pids).reshape(-1), as_tensor(g_pids).reshape(-1)
    qc, gc = as_tensor(q_camids).reshape(-1), as_tensor(g_camids).reshape(-1)
    nq, ng = D.shape
    if qp.numel() != nq or qc.numel() != nq or gp.numel() != ng or gc.numel() != ng:
        raise ValueError(f"distmat is {nq}×{ng} but got {qp.numel()} query ids, {qc.numel()} "
                         f"query cameras, {gp.numel()} gallery ids, {gc.numel()} gallery cameras")
    rel = relevance_from_ids(qp, qc, gp, gc, camera_junk=(protocol == "market"))
    res = evaluate_relevance(D, rel, max_rank=max_rank, ap=ap, threads=threads)
    if res.num_skipped:
        log.info("evaluate_rank: %d of %d queries have no valid match in the gallery and were skipped",
                 res.num_skipped, res.num_queries)
    return res if return_details else (res.cmc, res.mAP)


def evaluate_relevance(D: torch.Tensor, rel, *, max_rank: int = 50, ap: str = "standard",
                       threads: int | None = None) -> RankResult:
    """CMC/AP of distance matrix ``D`` (Q×G tensor, any device) for explicit ``Relevance``;
    ``threads`` as in ``evaluate_rank``."""
    check_choice("ap", ap, AP_DEFINITIONS)
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    md = D[rel.match_q.to(D.device), rel.match_g.to(D.device)] if rel.match_q.numel() else D.new_zeros(0)
    sm = sort_matches(rel, md)
    counts = new_counts(sm)
    count_block(D, 0, 0, sm, counts, threads=threads)
    return metrics_from_counts(counts, sm, max_rank, ap)


__all__ = ["evaluate_rank", "evaluate_relevance", "RankResult", "AP_DEFINITIONS", "RANK_PROTOCOLS"]
