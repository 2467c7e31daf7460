"""Exact rank arithmetic without a full sort.

Both AP definitions and CMC need, for each query, only the rank of every true match among the
*valid* gallery items (junk removed). The rank of the j-th match (0-based, matches ordered by
distance, ties by gallery index like a stable sort) is ``j + 1 + c_j`` where ``c_j`` counts the
valid non-matching items ordered before it. Items farther than the query's last match never
change a rank, so each block keeps only items with ``d <= d_last`` (one comparison pass) and
places them among the few sorted match distances with a binary search — O(G log m) instead of
the O(G log G) full argsort the reference implementations spend most of their time on.

Counts are additive over gallery chunks, which is what makes the streamed evaluation
(``streaming.py``) exact with bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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


def _orderable(d: torch.Tensor) -> torch.Tensor:
    """float32 → int64 in [0, 2^32) with the same order (−0.0 and +0.0 equal)."""
    d = d.float() + 0.0  # -0.0 + 0.0 == +0.0
    b = d.view(torch.int32)
    b = b ^ ((b >> 31) & 0x7FFFFFFF)
    return b.long() + (1 << 31)


@dataclass
class SortedMatches:
    """Per query, its true matches sorted by (distance, gallery index), flattened.

    ``start[q]:start[q+1]`` slices ``dist``/``gidx``; ``key`` (float32 path) packs
    ``(q, distance)`` into one sortable int64 so one binary search serves all queries.
    """

    start: torch.Tensor
    count: torch.Tensor
    dist: torch.Tensor
    gidx: torch.Tensor
    last: torch.Tensor
    key: torch.Tensor | None
    max_count: int


def sort_matches(rel: Relevance, match_dist: torch.Tensor) -> SortedMatches:
    """Order each query's matches by (distance, gallery index); ``match_dist`` is aligned with
    ``rel.match_q``/``rel.match_g``."""
    q, g, d = rel.match_q, rel.match_g, match_dist.cpu()
    if d.dtype not in (torch.float32, torch.float64):
        d = d.float()
    # Pairs arrive sorted by (q, g): two stable sorts give (q, d, g) order.
    o = torch.argsort(d, stable=True)
    o = o[torch.argsort(q[o], stable=True)]
    q, g, d = q[o], g[o], d[o]
    count = torch.bincount(q, minlength=rel.num_queries)
    start = torch.zeros(rel.num_queries + 1, dtype=torch.long)
    start[1:] = torch.cumsum(count, 0)
    last = torch.full((rel.num_queries,), float("-inf"), dtype=d.dtype)
    has = count > 0
    last[has] = d[start[1:][has] - 1]
    key = (q << 32) | _orderable(d) if d.dtype == torch.float32 else None
    return SortedMatches(start, count, d, g, last, key, int(count.max()) if count.numel() else 0)


def _buckets(q: torch.Tensor, g: torch.Tensor, d: torch.Tensor, sm: SortedMatches,
             dense_left: torch.Tensor | None = None) -> torch.Tensor:
    """For items (query q, gallery index g, distance d): how many of the query's matches rank
    before them, ordering by (distance, gallery index). float32 uses one binary search over the
    packed (query, distance) keys; float64 passes ``dense_left`` (per-item count of the row's
    matches with a smaller distance)."""
    if dense_left is None:
        left = torch.searchsorted(sm.key, (q << 32) | _orderable(d), side="left")
    else:
        left = dense_left + sm.start[q]
    b = left - sm.start[q]
    # Equal distances: the stable order puts the lower gallery index first. Rare, so found by
    # one gather and resolved only for those items.
    inrow = left < sm.start[q + 1]
    cand = inrow.nonzero(as_tuple=True)[0]
    if cand.numel():
        eq = sm.dist[left[cand]] == d[cand].to(sm.dist.dtype)
        ti = cand[eq]
        if ti.numel():
            if dense_left is None:
                right = torch.searchsorted(sm.key, (q[ti] << 32) | _orderable(d[ti]), side="right")
            else:
                right = left[ti] + 1
                # advance over equal match distances (few): bounded loop over the tie length
                while True:
                    more = (right < sm.start[q[ti] + 1]) & (sm.dist[right.clamp(max=sm.dist.numel() - 1)] == d[ti].to(sm.dist.dtype))
                    if not bool(more.any()):
                        break
                    right = right + more.long()
            n = right - left[ti]
            owner = torch.repeat_interleave(torch.arange(ti.numel()), n)
            off = torch.arange(int(n.sum())) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
            before = (sm.gidx[left[ti][owner] + off] < g[ti][owner]).long()
            b[ti] += torch.zeros(ti.numel(), dtype=torch.long).index_add_(0, owner, before)
    return b


def count_block(D: torch.Tensor, q0: int, g0: int, sm: SortedMatches, rel: Relevance,
                hist: torch.Tensor) -> None:
    """Add to ``hist[q0:q0+B]`` the valid wrong matches of distance block ``D`` (B×C, queries
    ``q0..``, gallery items ``g0..``) that rank before at least one match: ``hist[q, b]`` counts
    items with exactly ``b`` of the query's matches ranked before them.

    Every item within the query's last-match distance is counted, then the few excluded ones
    (true matches, per-query junk, global junk) are subtracted again — cheaper than testing
    each item for exclusion.
    """
    B, C = D.shape
    M1 = hist.shape[1]
    last = sm.last[q0:q0 + B].to(D.device, D.dtype)
    f64 = D.dtype != torch.float32
    dense = None
    if f64:
        # float64 cannot share an int64 key with the query index: binary-search each row's
        # padded match distances over the whole block (slower, still exact).
        Dd = D.cpu().double().contiguous()
        dense = torch.searchsorted(_padded(sm, q0, B), Dd, side="left")

    def add(r: torch.Tensor, c: torch.Tensor, d: torch.Tensor, sign: int) -> None:
        if r.numel() == 0:
            return
        q = r + q0
        b = _buckets(q, c + g0, d, sm, None if dense is None else dense[r, c])
        flat = r * M1 + b.clamp_(max=M1 - 1)
        h = torch.bincount(flat, minlength=B * M1).view(B, M1)
        if sign > 0:
            hist[q0:q0 + B] += h
        else:
            hist[q0:q0 + B] -= h

    r, c = (D <= last[:, None]).nonzero(as_tuple=True)
    add(r.cpu(), c.cpu(), D[r, c].cpu(), +1)
    # Per-query exclusions inside this block.
    lo = int(torch.searchsorted(rel.excl_q, torch.tensor(q0)))
    hi = int(torch.searchsorted(rel.excl_q, torch.tensor(q0 + B)))
    eq, eg = rel.excl_q[lo:hi] - q0, rel.excl_g[lo:hi] - g0
    inb = (eg >= 0) & (eg < C)
    eq, eg = eq[inb], eg[inb]
    if eq.numel():
        ed = D[eq.to(D.device), eg.to(D.device)].cpu()
        sel = ed <= last[eq.to(D.device)].cpu()
        add(eq[sel], eg[sel], ed[sel], -1)
    if rel.junk_cols is not None:
        jc = rel.junk_cols[g0:g0 + C].nonzero(as_tuple=True)[0]
        if jc.numel():
            DJ = D[:, jc.to(D.device)]
            jr, jj = (DJ <= last[:, None]).nonzero(as_tuple=True)
            jr, jj = jr.cpu(), jj.cpu()
            add(jr, jc[jj], DJ[jr.to(D.device), jj.to(D.device)].cpu(), -1)


def _padded(sm: SortedMatches, q0: int, B: int) -> torch.Tensor:
    M = max(sm.max_count, 1)
    out = torch.full((B, M), float("inf"), dtype=torch.float64)
    cnt = sm.count[q0:q0 + B]
    qi = torch.repeat_interleave(torch.arange(B), cnt)
    off = torch.arange(int(cnt.sum())) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
    out[qi, off] = sm.dist[sm.start[q0] + torch.arange(int(cnt.sum()))].double()
    return out


def new_hist(sm: SortedMatches) -> torch.Tensor:
    return torch.zeros((sm.count.numel(), sm.max_count + 1), dtype=torch.long)


@dataclass
class RankResult:
    """CMC (fractions, length ``max_rank``), mAP (fraction), per-query AP (NaN where skipped)
    and the number of queries without any valid match (skipped)."""

    cmc: np.ndarray
    mAP: float
    ap: np.ndarray
    num_queries: int
    num_skipped: int


def metrics_from_hist(hist: torch.Tensor, sm: SortedMatches, max_rank: int, ap: str) -> RankResult:
    """CMC and AP from the per-query counts of wrong matches ranked before each match."""
    n = sm.count
    M = sm.max_count
    Q = n.numel()
    valid = n > 0
    nv = int(valid.sum())
    if M == 0 or nv == 0:
        return RankResult(np.zeros(max_rank), 0.0, np.full(Q, np.nan), Q, Q)
    before = torch.cumsum(hist[:, :M], 1).double()
    j = torch.arange(M, dtype=torch.float64)
    rank = before + j + 1.0  # 1-based rank among valid items
    slot = j[None, :] < n[:, None]
    prec = (j + 1.0) / rank
    if ap == "standard":
        terms = prec
    elif ap == "market_matlab":
        # Trapezoid: Δrecall × (precision at the item before + precision here) / 2.
        prev = torch.where(rank > 1, j / (rank - 1.0).clamp(min=1.0), torch.ones_like(rank))
        terms = (prev + prec) / 2.0
    else:
        raise ValueError(f"unknown ap {ap!r}; valid values: {', '.join(AP_DEFINITIONS)}")
    ap_q = (terms * slot).sum(1) / n.clamp(min=1)
    ap_q = torch.where(valid, ap_q, torch.full_like(ap_q, float("nan")))
    first = rank[valid, 0]
    ks = torch.arange(1, max_rank + 1, dtype=torch.float64)
    cmc = (first[:, None] <= ks[None, :]).double().mean(0)
    return RankResult(cmc.numpy(), float(ap_q[valid].mean()), ap_q.numpy(), Q, Q - nv)
