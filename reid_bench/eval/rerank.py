"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), vectorised in torch with sparse V.

Same arithmetic as the authors' public distance-matrix version (squared distances, each row
divided by its maximum, k-reciprocal sets with the 2/3 expansion rule, Gaussian-kernel weights,
local query expansion over ``k2`` neighbours, Jaccard distance ``1 - Σmin / (2 - Σmin)``,
``λ`` blend) but never builds an N×N matrix: neighbours come from a blockwise top-k, V is
stored sparse (each row has a few dozen non-zeros), and the Jaccard sums run over the inverted
index of V, so memory is the three inputs plus one Q×G output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._tensor import as_tensor, num_threads, run_parallel


def _column_parts(qg: torch.Tensor, qq: torch.Tensor, gg: torch.Tensor, s: int, e: int):
    """Columns s..e of the full (Q+G)×(Q+G) matrix [[qq, qg], [qgᵀ, gg]] as two row blocks
    (its query part and its gallery part). The reference normalises *columns* and transposes,
    so row i of its matrix is column i here; contiguous copies keep the top-k fast."""
    Q = qq.shape[0]
    if e <= Q:
        return qq[:, s:e].t().contiguous(), qg[s:e]
    a, b = s - Q, e - Q
    return qg[:, a:b].t().contiguous(), gg[:, a:b].t().contiguous()


def _pair_values(qg, qq, gg, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """float32 squared full-matrix entry A[j, i] for index pairs (the transposed lookup)."""
    Q = qq.shape[0]
    out = torch.empty(i.shape, dtype=qg.dtype, device=qg.device)
    iq, jq = i < Q, j < Q
    m = iq & jq
    out[m] = qq[j[m], i[m]]
    m = iq & ~jq
    out[m] = qg[i[m], j[m] - Q]
    m = ~iq & jq
    out[m] = qg[j[m], i[m] - Q]
    m = ~iq & ~jq
    out[m] = gg[j[m] - Q, i[m] - Q]
    return (out * out).float()


def _reciprocal(nn: torch.Tensor, k: int, block: int = 4096) -> torch.Tensor:
    """mask[i, s]: nn[i, s] has i among its own first k+1 neighbours (k-reciprocal)."""
    nk = nn[:, :k + 1]
    N = nk.shape[0]
    out = torch.empty(nk.shape, dtype=torch.bool, device=nn.device)
    for s in range(0, N, block):
        rows = torch.arange(s, min(N, s + block), device=nn.device)
        out[s:s + block] = (nk[nk[rows]] == rows[:, None, None]).any(-1)
    return out


def re_rank(q_g_dist: Any, q_q_dist: Any, g_g_dist: Any, k1: int = 20, k2: int = 6,
            lambda_value: float = 0.3, *, device: str | torch.device | None = None,
            max_pairs: int = 1 << 23, threads: int | None = None):
    """k-reciprocal re-ranked query × gallery distance.

    Takes the query×gallery (Q×G), query×query (Q×Q) and gallery×gallery (G×G) distances
    (numpy or torch; the reference squares them, so pass plain euclidean distances to match
    common use) and returns the Q×G re-ranked distance as float32 — numpy if ``q_g_dist`` was
    numpy, else a torch tensor on ``device`` (default: the input's). ``max_pairs`` bounds the
    temporary memory of the Jaccard step on non-CPU devices; ``threads``: CPU threads of the
    compiled steps (default: torch's thread count).
    """
    was_numpy = not isinstance(q_g_dist, torch.Tensor)
    qg = as_tensor(q_g_dist)
    dev = torch.device(device) if device is not None else qg.device
    dtype = torch.float64 if qg.dtype == torch.float64 else torch.float32
    qg = qg.to(dev, dtype)
    qq = as_tensor(q_q_dist).to(dev, dtype)
    gg = as_tensor(g_g_dist).to(dev, dtype)
    Q, G = qg.shape
    if qq.shape != (Q, Q) or gg.shape != (G, G):
        raise ValueError(f"expected q_q {Q}×{Q} and g_g {G}×{G} for q_g {Q}×{G}, got "
                         f"{tuple(qq.shape)} and {tuple(gg.shape)}")
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    N = Q + G
    kk = min(k1 + 1, N)

    # 1. Nearest neighbours of every row of the normalised matrix (not a full argsort).
    # Squaring and dividing by the row maximum keep the order, so the top-k runs on the raw
    # distances; the row maximum is kept for the weights.
    if dev.type == "cpu":
        nn, rowmax = _neighbours_cpu(qg, qq, gg, kk, num_threads(threads))
    else:
        nn, rowmax = _neighbours_torch(qg, qq, gg, kk)
    out = _rest(qg, qq, gg, nn, rowmax, k1, k2, lambda_value, max_pairs, num_threads(threads))
    return out.cpu().numpy() if was_numpy else out


def _ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """0..n cut into ``parts`` contiguous (lo, hi) ranges of about equal length."""
    edges = sorted({n * i // parts for i in range(parts + 1)})
    return list(zip(edges[:-1], edges[1:], strict=True))


def _neighbours_cpu(qg, qq, gg, kk: int, threads: int):
    """Each column's ``kk`` nearest rows of M = [[qq, qg], [qgᵀ, gg]] and its maximum, in
    row-major passes over the inputs (see ``_rerank_kernel.stream_cols``)."""
    from ._rerank_kernel import stream_cols, stream_rows

    Q, G = qg.shape
    N = Q + G
    a_qg, a_qq, a_gg = (np.ascontiguousarray(t.numpy()) for t in (qg, qq, gg))
    dt = a_qg.dtype
    vals = np.empty((N, kk), dt)
    idx = np.zeros((N, kk), np.int64)
    cnt = np.zeros(N, np.int64)
    thr = np.full(N, np.inf, dt)
    cmax = np.full(N, -np.inf, dt)
    state = (vals, idx, cnt, thr, cmax, kk)
    # columns < Q: rows 0..Q-1 from qq's columns, then rows Q.. from qg's rows (row order)
    run_parallel(lambda lo, hi: stream_cols(a_qq, 0, 0, lo, hi, *state), _ranges(Q, threads))
    run_parallel(lambda lo, hi: stream_rows(a_qg, Q, 0, lo, hi, *state), _ranges(Q, threads))
    # columns >= Q: rows 0..Q-1 from qg's columns, then rows Q.. from gg's columns
    run_parallel(lambda lo, hi: stream_cols(a_qg, 0, Q, lo, hi, *state), _ranges(G, threads))
    run_parallel(lambda lo, hi: stream_cols(a_gg, Q, Q, lo, hi, *state), _ranges(G, threads))
    rowmax = torch.from_numpy(cmax * cmax).float()
    return torch.from_numpy(idx), rowmax


def _neighbours_torch(qg, qq, gg, kk: int):
    """``_neighbours_cpu`` for other devices: a blockwise top-k of column blocks."""
    Q, G = qg.shape
    N = Q + G
    dev = qg.device
    nn = torch.empty((N, kk), dtype=torch.long, device=dev)
    rowmax = torch.empty(N, dtype=torch.float32, device=dev)
    step = max(1, (1 << 24) // N)
    bounds = sorted(set(list(range(0, Q, step)) + [Q] + list(range(Q, N, step)) + [N]))
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        pq, pgal = _column_parts(qg, qq, gg, s, e)
        mx = torch.maximum(pq.max(1).values, pgal.max(1).values)
        rowmax[s:e] = (mx * mx).float()
        vq, iq = torch.topk(pq, min(kk, Q), dim=1, largest=False, sorted=True)
        vg, ig = torch.topk(pgal, min(kk, G), dim=1, largest=False, sorted=True)
        v = torch.cat([vq, vg], 1)
        i = torch.cat([iq, ig + Q], 1)
        order = torch.topk(v, kk, dim=1, largest=False, sorted=True).indices
        nn[s:e] = i.gather(1, order)
        del pq, pgal
    return nn, rowmax


def _rest(qg, qq, gg, nn, rowmax, k1, k2, lambda_value, max_pairs, threads):
    Q, G = qg.shape
    N = Q + G
    kk = nn.shape[1]
    dev = qg.device

    # 2. k-reciprocal sets R(i) (k1) and R(c) with k1/2 for the expansion candidates.
    kh = int(np.around(k1 / 2.0))
    rmask = _reciprocal(nn, k1)
    hmask = _reciprocal(nn, min(kh, kk - 1))
    nh = nn[:, :min(kh, kk - 1) + 1]

    # 3. Expansion: add R_half(c) for each c in R(i) when > 2/3 of it lies in R(i); dedupe.
    S1, S2 = kk, nh.shape[1]
    slots = S1 + S1 * S2
    exp_idx = torch.empty((N, slots), dtype=torch.long, device=dev)
    exp_ok = torch.empty((N, slots), dtype=torch.bool, device=dev)
    blk_n = max(1, (1 << 22) // (S1 * S2 * S1))
    for s in range(0, N, blk_n):
        e = min(N, s + blk_n)
        ni, ri = nn[s:e], rmask[s:e]
        cand = nh[ni]                       # B×S1×S2: R_half candidates of each neighbour
        cmask = hmask[ni] & ri[:, :, None]  # only candidates of true reciprocal neighbours
        inR = ((cand[..., None] == ni[:, None, None, :]) & ri[:, None, None, :]).any(-1)
        inter = (inR & cmask).sum(-1).double()
        size = cmask.sum(-1).double()
        take = ri & (inter > (2.0 / 3.0) * size)
        exp_idx[s:e, :S1] = ni
        exp_ok[s:e, :S1] = ri
        exp_idx[s:e, S1:] = cand.reshape(e - s, -1)
        exp_ok[s:e, S1:] = (cmask & take[:, :, None]).reshape(e - s, -1)
    exp_idx = torch.where(exp_ok, exp_idx, torch.full_like(exp_idx, N))
    exp_idx = torch.sort(exp_idx, dim=1).values
    keep = exp_idx < N
    keep[:, 1:] &= exp_idx[:, 1:] != exp_idx[:, :-1]
    del exp_ok

    # 4. V: Gaussian-kernel weights on the expansion set, rows summing to one (sparse COO).
    vr = torch.arange(N, device=dev)[:, None].expand_as(exp_idx)[keep]
    vc = exp_idx[keep]
    del exp_idx, keep
    vv = torch.exp(-(_pair_values(qg, qq, gg, vr, vc) / rowmax[vr]))
    vv = vv / torch.zeros(N, dtype=torch.float32, device=dev).index_add_(0, vr, vv)[vr]

    # 5. Local query expansion: V_i ← mean of the rows of its k2 nearest neighbours.
    if k2 != 1:
        vr, vc, vv = _expand(vr, vc, vv, nn[:, :min(k2, kk)], N)

    # 6. Jaccard over the inverted index, query rows against gallery rows only.
    if dev.type == "cpu":
        return _jaccard_blend_cpu(vr, vc, vv, qg, rowmax, Q, G, N, lambda_value, threads)
    return _jaccard_blend(vr, vc, vv, qg, rowmax, Q, G, N, lambda_value, max_pairs)


def _csr(rows: torch.Tensor, n: int) -> torch.Tensor:
    start = torch.zeros(n + 1, dtype=torch.long, device=rows.device)
    start[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return start


def _expand_ranges(start: torch.Tensor, src: torch.Tensor):
    """Positions of all entries of CSR rows ``src`` (flattened), and which src each came from."""
    cnt = start[src + 1] - start[src]
    owner = torch.repeat_interleave(torch.arange(src.numel(), device=src.device), cnt)
    off = torch.arange(int(cnt.sum()), device=src.device) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
    return start[src][owner] + off, owner


def _expand(vr, vc, vv, nbr: torch.Tensor, N: int):
    """Sparse rows V_qe[i] = mean over t of V[nbr[i, t]] (the reference's np.mean over k2 rows)."""
    k2 = nbr.shape[1]
    start = _csr(vr, N)
    pos, owner = _expand_ranges(start, nbr.reshape(-1))
    row = owner // k2
    key = row * N + vc[pos]
    ukey, inv = torch.unique(key, sorted=True, return_inverse=True)
    val = torch.zeros(ukey.numel(), dtype=torch.float32, device=vv.device).index_add_(0, inv, vv[pos])
    return ukey // N, ukey % N, val / k2


def _jaccard_blend_cpu(vr, vc, vv, qg, rowmax, Q, G, N, lam, threads):
    """``_jaccard_blend`` with the compiled per-query accumulation (``jaccard_rows``)."""
    from ._rerank_kernel import jaccard_rows

    g_sel = vr >= Q
    gr, gcl, gv = vr[g_sel] - Q, vc[g_sel], vv[g_sel]
    o = torch.argsort(gcl, stable=True)
    gr, gcl, gv = gr[o].numpy(), gcl[o], gv[o].numpy()
    cstart = _csr(gcl, N).numpy()
    q_sel = vr < Q
    qr, qc, qv = vr[q_sel], vc[q_sel].numpy(), vv[q_sel].numpy()
    qstart = _csr(qr, Q).numpy()
    a_qg = np.ascontiguousarray(qg.numpy())
    rm = np.ascontiguousarray(rowmax.numpy(), dtype=np.float32)
    out = np.empty((Q, G), np.float32)
    run_parallel(lambda lo, hi: jaccard_rows(lo, hi, qstart, qc, qv, cstart, gr, gv, a_qg, rm,
                                             float(lam), out), _ranges(Q, threads))
    return torch.from_numpy(out)


def _jaccard_blend(vr, vc, vv, qg, rowmax, Q, G, N, lam, max_pairs):
    dev = vv.device
    # Inverted index: gallery rows of V_qe grouped by column.
    g_sel = vr >= Q
    gr, gcl, gv = vr[g_sel] - Q, vc[g_sel], vv[g_sel]
    o = torch.argsort(gcl, stable=True)
    gr, gcl, gv = gr[o], gcl[o], gv[o]
    cstart = _csr(gcl, N)
    q_sel = vr < Q
    qr, qc, qv = vr[q_sel], vc[q_sel], vv[q_sel]
    per_entry = cstart[qc + 1] - cstart[qc]
    per_query = torch.zeros(Q, dtype=torch.long, device=dev).index_add_(0, qr, per_entry)
    qstart = _csr(qr, Q)
    out = torch.empty((Q, G), dtype=torch.float32, device=dev)
    cum = torch.cumsum(per_query, 0)
    s = 0
    while s < Q:
        # Largest block of queries whose pair count fits max_pairs (at least one query).
        base = int(cum[s - 1]) if s else 0
        e = int(torch.searchsorted(cum, torch.tensor(base + max_pairs, device=dev), right=True))
        e = max(e, s + 1)
        a, b = int(qstart[s]), int(qstart[e])
        col = qc[a:b]
        cnt = cstart[col + 1] - cstart[col]
        tot = int(cnt.sum())
        # every (query entry, gallery entry of the same column) pair, as flat gathers
        # (index_select: far faster than advanced indexing on CPU)
        first = cstart[col] - (torch.cumsum(cnt, 0) - cnt)
        pos = torch.repeat_interleave(first, cnt, output_size=tot) + torch.arange(tot, device=dev)
        tmin = torch.minimum(torch.repeat_interleave(qv[a:b], cnt, output_size=tot), gv.index_select(0, pos))
        flat = torch.repeat_interleave((qr[a:b] - s) * G, cnt, output_size=tot) + gr.index_select(0, pos)
        del pos
        t = torch.zeros((e - s) * G, dtype=torch.float32, device=dev).scatter_add_(0, flat, tmin).view(e - s, G)
        del flat, tmin
        jac = 1 - t / (2.0 - t)
        orig = (qg[s:e] * qg[s:e]).float() / rowmax[s:e, None]
        out[s:e] = jac * (1 - lam) + orig * lam
        s = e
    return out
