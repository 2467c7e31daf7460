"""Exact rank arithmetic without a sort.

Both AP definitions and CMC need, for each query, only the rank of every true match among the
*valid* gallery items (junk removed). The rank of the j-th match (0-based, matches ordered by
distance, ties by gallery index like a stable sort) is ``j + 1 + c_j`` where ``c_j`` counts the
valid wrong matches ordered before it. ``count_block`` adds the ``c_j`` of one block of the
distance matrix with a compiled per-query pass (``_rank_kernel.py``): for each match, a
branch-free, vectorised compare-and-count over the query's row; no argsort, and a cost that
does not depend on how good the model is.

Tie rule: equal distances rank the lower gallery index first (a stable sort, as MATLAB's
``sort`` in the Market-1501 code). fast-reid and torchreid call ``np.argsort``'s default
(unstable) sort, whose order among equal distances is unspecified; on inputs without ties, or
whenever their sort keeps equal items in index order, the results are identical.

Counts are additive over gallery chunks, which is what makes the streamed evaluation
(``streaming.py``) exact with bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._tensor import num_threads, run_parallel

AP_DEFINITIONS = ("standard", "market_matlab")


@dataclass
class Relevance:
    """Who is relevant to whom, in a global gallery index space of size ``num_gallery``.

    ``match_q``/``match_g``: (query, gallery) pairs of true matches, sorted by query then gallery
    index. ``excl_q``/``excl_g``: every per-query item that is not a wrong match (true matches
    and per-query junk), sorted the same way. ``junk_cols``: bool per gallery item that is junk
    for every query (Market id -1), or None.
    """

    num_queries: int
    num_gallery: int
    match_q: torch.Tensor
    match_g: torch.Tensor
    excl_q: torch.Tensor
    excl_g: torch.Tensor
    junk_cols: torch.Tensor | None = None


def relevance_from_ids(q_pids: torch.Tensor, q_camids: torch.Tensor, g_pids: torch.Tensor,
                       g_camids: torch.Tensor, *, camera_junk: bool = True) -> Relevance:
    """Market-style relevance from identities and cameras: a match has the query's id and
    (``camera_junk``) another camera; same id and same camera is junk; id -1 is junk for every
    query; everything else (distractors, id 0, included) is a wrong match.

    Vectorised through the gallery sorted by id: each query's same-id items are one slice.
    """
    q_pids = q_pids.long().cpu()
    q_camids = q_camids.long().cpu()
    g_pids = g_pids.long().cpu()
    g_camids = g_camids.long().cpu()
    nq, ng = q_pids.numel(), g_pids.numel()
    order = torch.argsort(g_pids, stable=True)
    sp = g_pids[order]
    lo = torch.searchsorted(sp, q_pids, side="left")
    hi = torch.searchsorted(sp, q_pids, side="right")
    cnt = hi - lo
    cnt = torch.where(q_pids == -1, torch.zeros_like(cnt), cnt)  # junk queries match nothing
    qi = torch.repeat_interleave(torch.arange(nq), cnt)
    starts = torch.cumsum(cnt, 0) - cnt
    within = torch.arange(qi.numel()) - torch.repeat_interleave(starts, cnt)
    gi = order[torch.repeat_interleave(lo, cnt) + within]
    if camera_junk:
        junk = g_camids[gi] == q_camids[qi]
    else:
        junk = torch.zeros_like(qi, dtype=torch.bool)
    junk_cols = g_pids == -1
    # qi ascending, gi ascending within a query: already in the documented order.
    return Relevance(nq, ng, qi[~junk], gi[~junk], qi, gi,
                     junk_cols if bool(junk_cols.any()) else None)


def relevance_from_lists(num_queries: int, num_gallery: int, positives: list, junk: list) -> Relevance:
    """Relevance from explicit per-query lists of gallery indices (retrieval ground truth such
    as Oxford5k good+ok and junk). ``positives[q]``/``junk[q]``: iterables of ints."""
    def pairs(lists):
        qs = [np.full(len(x), q, dtype=np.int64) for q, x in enumerate(lists)]
        gs = [np.asarray(sorted(set(int(v) for v in x)), dtype=np.int64) for x in lists]
        if not qs:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        q = torch.from_numpy(np.concatenate([np.full(len(g), i, dtype=np.int64) for i, g in enumerate(gs)]))
        g = torch.from_numpy(np.concatenate(gs)) if gs else torch.zeros(0, dtype=torch.long)
        del qs
        return q, g

    pq, pg = pairs(positives)
    jq, jg = pairs(junk)
    # An item both positive and junk is positive (Oxford lists are disjoint; be deterministic).
    keys = torch.unique(torch.cat([pq * num_gallery + pg, jq * num_gallery + jg]))
    return Relevance(num_queries, num_gallery, pq, pg, keys // num_gallery, keys % num_gallery, None)


@dataclass
class SortedMatches:
    """Every query's true matches sorted by (distance, gallery index), flattened, plus the
    compiled pass's inputs as numpy arrays.

    ``start[q]:start[q+1]`` slices ``dist``/``gidx``/``qidx`` (P matches in all); ``count`` the
    matches per query. ``xstart``/``xg``: every query's excluded items (matches and per-query
    junk, global gallery indices) in the same CSR form; ``ok``: float32 per gallery item, 0 for
    items junk to every query (None when there are none). ``dist``'s dtype (float32 or
    float64) is the one distances are compared in.
    """

    start: np.ndarray
    count: np.ndarray
    dist: np.ndarray
    gidx: np.ndarray
    qidx: np.ndarray
    xstart: np.ndarray
    xg: np.ndarray
    ok: np.ndarray | None

    @property
    def total(self) -> int:
        return self.dist.size

    @property
    def num_queries(self) -> int:
        return self.count.size


def _csr_start(rows: torch.Tensor, n: int) -> np.ndarray:
    start = np.zeros(n + 1, dtype=np.int64)
    start[1:] = np.cumsum(np.bincount(rows.numpy(), minlength=n))
    return start


def sort_matches(rel: Relevance, match_dist) -> SortedMatches:
    """Order each query's matches by (distance, gallery index); ``match_dist`` (tensor or numpy)
    is aligned with ``rel.match_q``/``rel.match_g``. Distances are compared in its dtype
    (float64 stays float64, anything else becomes float32)."""
    d = torch.as_tensor(match_dist).detach().cpu()
    if d.dtype not in (torch.float32, torch.float64):
        d = d.float()
    q, g = rel.match_q.cpu(), rel.match_g.cpu()
    if d.numel() != q.numel():
        raise ValueError(f"match_dist has {d.numel()} distances for {q.numel()} true-match pairs")
    # Pairs arrive sorted by (q, g): two stable sorts give (q, d, g) order.
    o = torch.argsort(d, stable=True)
    o = o[torch.argsort(q[o], stable=True)]
    q, g, d = q[o], g[o], d[o]
    start = _csr_start(q, rel.num_queries)
    ok = None
    if rel.junk_cols is not None:
        ok = (~rel.junk_cols.cpu()).numpy().astype(np.float32)
    return SortedMatches(start, np.diff(start), d.numpy().copy(), g.numpy().astype(np.int64),
                         q.numpy().astype(np.int64), _csr_start(rel.excl_q.cpu(), rel.num_queries),
                         rel.excl_g.cpu().numpy().astype(np.int64), ok)


def new_counts(sm: SortedMatches) -> np.ndarray:
    """Zeroed counts for ``count_block``: one int64 slot per match."""
    return np.zeros(sm.total, dtype=np.int64)


def _row_ranges(sm: SortedMatches, q0: int, B: int, parts: int) -> list[tuple[int, int]]:
    """Split rows 0..B into ``parts`` ranges of about equal work (a row costs ~ its matches)."""
    if parts <= 1 or B < 2 * parts:
        return [(0, B)]
    cost = np.cumsum(sm.count[q0:q0 + B] + 1)
    cuts = np.searchsorted(cost, cost[-1] * np.arange(1, parts) / parts)
    edges = [0, *sorted(set(int(c) for c in cuts if 0 < c < B)), B]
    return list(zip(edges[:-1], edges[1:], strict=True))


def count_block(D, q0: int, g0: int, sm: SortedMatches, counts: np.ndarray, *,
                threads: int | None = None) -> None:
    """Add to ``counts`` (``new_counts(sm)``) the valid wrong matches of distance block ``D``
    (B×C tensor or numpy array on any device; queries ``q0..q0+B``, gallery items
    ``g0..g0+C``) that rank before each match.

    ``threads``: worker threads over the block's queries (default: torch's thread count).
    """
    # numba: imported (and compiled or loaded from its cache) on first use
    from ._rank_kernel import MAX_COLS, count_rows

    if sm.total == 0:
        return
    D = torch.as_tensor(D) if not isinstance(D, np.ndarray) else torch.from_numpy(D)
    B, C = D.shape
    dtype = torch.float64 if sm.dist.dtype == np.float64 else torch.float32
    if B == 0 or C == 0 or int(sm.start[q0 + B] - sm.start[q0]) == 0:
        return
    nthreads = num_threads(threads)
    # Row blocks of <= 2^24 elements (a copy is made only for non-CPU, non-contiguous or
    # other-dtype input); column blocks below the kernel's 2^24 limit.
    step_c = min(C, MAX_COLS - 1)
    step_r = max(1, (1 << 24) // step_c)
    for c0 in range(0, C, step_c):
        c1 = min(C, c0 + step_c)
        ok = np.ones(1, np.float32) if sm.ok is None else sm.ok[g0 + c0:g0 + c1]
        for r0 in range(0, B, step_r):
            blk = D[r0:r0 + step_r, c0:c1]
            arr = np.ascontiguousarray(blk.detach().to("cpu", dtype).numpy())
            args = (q0 + r0, c1 - c0, g0 + c0, sm.start, sm.dist, sm.gidx, sm.xstart, sm.xg,
                    ok, sm.ok is not None, counts)
            # nogil kernel: threads share counts but write disjoint query slices.
            run_parallel(lambda lo, hi, a=arr, x=args: count_rows(a, lo, hi, *x),
                         _row_ranges(sm, q0 + r0, arr.shape[0], nthreads))


@dataclass
class RankResult:
    """CMC (fractions, length ``max_rank``), mAP (fraction), per-query AP (NaN where skipped)
    and the number of queries without any valid match (skipped)."""

    cmc: np.ndarray
    mAP: float
    ap: np.ndarray
    num_queries: int
    num_skipped: int


def metrics_from_counts(counts: np.ndarray, sm: SortedMatches, max_rank: int, ap: str) -> RankResult:
    """CMC and AP from the counts of valid wrong matches ranked before each match."""
    if ap not in AP_DEFINITIONS:
        raise ValueError(f"unknown ap {ap!r}; valid values: {', '.join(AP_DEFINITIONS)}")
    n = sm.count
    Q, P = sm.num_queries, sm.total
    valid = n > 0
    nv = int(valid.sum())
    if P == 0 or nv == 0:
        return RankResult(np.zeros(max_rank), 0.0, np.full(Q, np.nan), Q, Q)
    j = (np.arange(P) - sm.start[sm.qidx]).astype(np.float64)  # true matches ranked before
    rank = counts.astype(np.float64) + j + 1.0                 # 1-based rank among valid items
    prec = (j + 1.0) / rank
    if ap == "standard":
        terms = prec
    else:
        # Trapezoid: Δrecall × (precision at the item before + precision here) / 2.
        prev = np.where(rank > 1, j / np.maximum(rank - 1.0, 1.0), 1.0)
        terms = (prev + prec) / 2.0
    ap_q = np.bincount(sm.qidx, weights=terms, minlength=Q) / np.maximum(n, 1)
    ap_q[~valid] = np.nan
    first = rank[sm.start[:-1][valid]]
    # cmc[k] = fraction of queries whose first match ranks within k+1
    hits = np.bincount(np.minimum(first.astype(np.int64), max_rank + 1) - 1, minlength=max_rank + 1)
    cmc = np.cumsum(hits[:max_rank]) / nv
    return RankResult(cmc.astype(np.float64), float(ap_q[valid].mean()), ap_q, Q, Q - nv)
