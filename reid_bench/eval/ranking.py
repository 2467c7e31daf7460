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
    """Every query's true matches sorted by (distance, gallery index), flattened.

    ``start[q]:start[q+1]`` slices ``dist``/``gidx``/``qidx`` (P matches in all). ``run_end[p]``
    is one past the last match with the same query and distance as match p (ties).
    ``key`` (float32 only) packs (query, distance) into one sortable int64 so one binary search
    serves all queries; it ends with a sentinel.
    """

    start: torch.Tensor
    count: torch.Tensor
    dist: torch.Tensor
    gidx: torch.Tensor
    qidx: torch.Tensor
    run_end: torch.Tensor
    last: torch.Tensor
    key: torch.Tensor | None
    max_count: int

    @property
    def total(self) -> int:
        return self.dist.numel()


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
    P = q.numel()
    count = torch.bincount(q, minlength=rel.num_queries)
    start = torch.zeros(rel.num_queries + 1, dtype=torch.long)
    start[1:] = torch.cumsum(count, 0)
    last = torch.full((rel.num_queries,), float("-inf"), dtype=d.dtype)
    has = count > 0
    last[has] = d[start[1:][has] - 1]
    new_run = torch.ones(P, dtype=torch.bool)
    if P > 1:
        new_run[1:] = (q[1:] != q[:-1]) | (d[1:] != d[:-1])
    run_id = torch.cumsum(new_run.long(), 0) - 1
    run_end = torch.cumsum(torch.bincount(run_id, minlength=int(run_id[-1]) + 1 if P else 0), 0)[run_id] if P else run_id
    key = None
    if d.dtype == torch.float32:
        key = torch.cat([(q << 32) | _orderable(d), torch.tensor([torch.iinfo(torch.long).max])])
    return SortedMatches(start, count, d, g, q, run_end, last, key,
                         int(count.max()) if count.numel() else 0)


def _resolve_ties(q: torch.Tensor, g: torch.Tensor, left: torch.Tensor, sm: SortedMatches) -> torch.Tensor:
    """Position of items whose distance equals a match distance of their query (``left`` = first
    such match): the stable order puts the lower gallery index first."""
    n = sm.run_end[left] - left
    owner = torch.repeat_interleave(torch.arange(q.numel()), n)
    off = torch.arange(int(n.sum())) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
    before = (sm.gidx[left[owner] + off] < g[owner]).long()
    return left + torch.zeros(q.numel(), dtype=torch.long).index_add_(0, owner, before)


def _place(q: torch.Tensor, g: torch.Tensor, d: torch.Tensor, left: torch.Tensor,
           sm: SortedMatches) -> torch.Tensor:
    """Global position of the first match ranked after each item (``left``: first match of the
    item's query with distance >= d); ``sm.total`` when no match of its query comes after."""
    P = sm.total
    end = sm.start[q + 1]
    lc = left.clamp(max=max(P - 1, 0))
    tie = ((left < end) & (sm.dist[lc] == d.to(sm.dist.dtype))).nonzero(as_tuple=True)[0]
    pos = left.clone()
    if tie.numel():
        pos[tie] = _resolve_ties(q[tie], g[tie], left[tie], sm)
    return torch.where(pos >= end, torch.full_like(pos, P), pos)


def _count_fast32(D: torch.Tensor, q0: int, g0: int, sm: SortedMatches, hist: torch.Tensor) -> None:
    """float32 path of ``count_block`` for every item within its row's last-match distance.

    Only two passes touch the whole block (a comparison and a flat ``nonzero``); everything else
    runs on the surviving items. Keys pack (query, distance bits) into one int64, so a single
    binary search over all the block's matches places every item.
    """
    B, C = D.shape
    D = D.contiguous()
    last = sm.last[q0:q0 + B].to(D.device)
    lin = (D <= last[:, None]).view(-1).nonzero().squeeze(1)
    if lin.numel() == 0:
        return
    d = D.view(-1).index_select(0, lin).cpu()  # index_select: much faster than D[...] on CPU
    lin = lin.cpu()
    r = lin // C
    bits = d.view(torch.int32)
    if int(bits.min()) >= 0:
        # non-negative floats: the bit pattern already sorts like the value
        base = ((torch.arange(B) + q0) << 32) + (1 << 31)
        key = base.index_select(0, r) + bits.long()
    else:
        key = ((r + q0) << 32) | _orderable(d)
    left = torch.searchsorted(sm.key[:-1], key)
    tie = (sm.key.index_select(0, left) == key).nonzero(as_tuple=True)[0]
    if tie.numel():
        q = r[tie] + q0
        pos = _resolve_ties(q, lin[tie] % C + g0, left[tie], sm)
        left[tie] = torch.where(pos >= sm.start[q + 1], torch.full_like(pos, sm.total), pos)
    hist += torch.bincount(left, minlength=sm.total + 1)


def count_block(D: torch.Tensor, q0: int, g0: int, sm: SortedMatches, rel: Relevance,
                hist: torch.Tensor) -> None:
    """Add to ``hist`` the valid wrong matches of distance block ``D`` (B×C; queries ``q0..``,
    gallery items ``g0..``) that rank before a match: ``hist[p]`` counts items whose next match
    is match ``p`` of ``sm`` (``hist[sm.total]`` collects the rest).

    Every item within its query's last-match distance is counted, then the few excluded ones
    (true matches, per-query junk, global junk) are subtracted again — cheaper than testing
    each item for exclusion.
    """
    B, C = D.shape
    P = sm.total
    last = sm.last[q0:q0 + B].to(D.device, D.dtype)
    fast = D.dtype == torch.float32 and sm.key is not None
    pad = None if fast else _padded(sm, q0, B)

    def add(r: torch.Tensor, c: torch.Tensor, d: torch.Tensor, sign: int) -> None:
        if r.numel() == 0:
            return
        q = r + q0
        if fast:
            left = torch.searchsorted(sm.key[:-1], (q << 32) | _orderable(d))
        else:
            # float64 cannot share an int64 key with the query index: compare with the row's
            # padded matches (B×M, small) item by item in chunks.
            left = torch.zeros_like(q)
            for s in range(0, q.numel(), 1 << 20):
                sl = slice(s, s + (1 << 20))
                left[sl] = (pad[r[sl]] < d[sl, None].double()).sum(1)
            left = left + sm.start[q]
        h = torch.bincount(_place(q, c + g0, d, left, sm), minlength=P + 1)
        hist.add_(h if sign > 0 else -h)

    if fast:
        _count_fast32(D, q0, g0, sm, hist)
    else:
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
        sel = ed <= last.cpu()[eq]
        add(eq[sel], eg[sel], ed[sel], -1)
    if rel.junk_cols is not None:
        jc = rel.junk_cols[g0:g0 + C].nonzero(as_tuple=True)[0]
        if jc.numel():
            DJ = D[:, jc.to(D.device)]
            jr, jj = (DJ <= last[:, None]).nonzero(as_tuple=True)
            add(jr.cpu(), jc[jj.cpu()], DJ[jr, jj].cpu(), -1)


def _padded(sm: SortedMatches, q0: int, B: int) -> torch.Tensor:
    """Rows q0..q0+B of the match distances as a B×max_count float64 matrix padded with +inf."""
    M = max(sm.max_count, 1)
    out = torch.full((B, M), float("inf"), dtype=torch.float64)
    cnt = sm.count[q0:q0 + B]
    n = int(cnt.sum())
    qi = torch.repeat_interleave(torch.arange(B), cnt)
    off = torch.arange(n) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
    out[qi, off] = sm.dist[int(sm.start[q0]):int(sm.start[q0]) + n].double()
    return out


def new_hist(sm: SortedMatches) -> torch.Tensor:
    """Zeroed counts for ``count_block``: one slot per match plus one for "after all"."""
    return torch.zeros(sm.total + 1, dtype=torch.long)


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
    """CMC and AP from the counts of wrong matches ranked before each match."""
    if ap not in AP_DEFINITIONS:
        raise ValueError(f"unknown ap {ap!r}; valid values: {', '.join(AP_DEFINITIONS)}")
    n = sm.count
    Q, P = n.numel(), sm.total
    valid = n > 0
    nv = int(valid.sum())
    if P == 0 or nv == 0:
        return RankResult(np.zeros(max_rank), 0.0, np.full(Q, np.nan), Q, Q)
    h = hist[:P]
    cs = torch.cumsum(h, 0)
    row0 = sm.start[sm.qidx]
    wrong_before = (cs - (cs - h)[row0]).double()  # wrong matches ranked before match p
    j = (torch.arange(P) - row0).double()           # true matches ranked before match p
    rank = wrong_before + j + 1.0                   # 1-based rank among valid items
    prec = (j + 1.0) / rank
    if ap == "standard":
        terms = prec
    else:
        # Trapezoid: Δrecall × (precision at the item before + precision here) / 2.
        prev = torch.where(rank > 1, j / (rank - 1.0).clamp(min=1.0), torch.ones_like(rank))
        terms = (prev + prec) / 2.0
    ap_q = torch.zeros(Q, dtype=torch.float64).index_add_(0, sm.qidx, terms) / n.clamp(min=1)
    ap_q[~valid] = float("nan")
    first = rank[sm.start[:-1][valid]]
    ks = torch.arange(1, max_rank + 1, dtype=torch.float64)
    cmc = (first[:, None] <= ks[None, :]).double().mean(0)
    return RankResult(cmc.numpy(), float(ap_q[valid].mean()), ap_q.numpy(), Q, Q - nv)
