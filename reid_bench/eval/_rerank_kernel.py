"""Compiled (numba) steps of k-reciprocal re-ranking: the nearest neighbours of every column of
the full distance matrix, and the sparse Jaccard sums.

The reference re-ranking works on the *columns* of ``M = [[qq, qg], [qgᵀ, gg]]`` (it normalises
columns, then transposes). ``stream_topk`` finds each column's ``k`` smallest entries and its
maximum in one row-major pass over the inputs (no transpose, no N×N matrix): every column keeps
a sorted buffer of ``k`` (value, row) pairs and a threshold; an entry is inserted only when it
beats its column's threshold, which after the first rows is rare. Entries of a column are seen
in increasing row order and an equal value never displaces an earlier one, so ties keep the
lower row index (a stable order).

Cached on disk (``cache=True``); float32 and float64 inputs are the two specialisations.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _insert(vals, idx, cnt, thr, col, x, row, k):
    """Insert (x, row) into column ``col``'s sorted buffer (x beats its threshold)."""
    n = cnt[col]
    p = n if n < k else k - 1
    while p > 0 and vals[col, p - 1] > x:
        if p < k:
            vals[col, p] = vals[col, p - 1]
            idx[col, p] = idx[col, p - 1]
        p -= 1
    vals[col, p] = x
    idx[col, p] = row
    if n < k:
        cnt[col] = n + 1
    if cnt[col] == k:
        thr[col] = vals[col, k - 1]


@njit(cache=True, nogil=True)
def stream_cols(X, row0, col0, c_lo, c_hi, vals, idx, cnt, thr, cmax, k):
    """Feed ``X[r, j]`` as the entry of row ``row0 + r`` of column ``col0 + j`` for the columns
    ``c_lo <= j < c_hi``, rows in order."""
    for r in range(X.shape[0]):
        for j in range(c_lo, c_hi):
            x = X[r, j]
            col = col0 + j
            if x > cmax[col]:
                cmax[col] = x
            if cnt[col] < k or x < thr[col]:
                _insert(vals, idx, cnt, thr, col, x, row0 + r, k)


@njit(cache=True, nogil=True)
def stream_rows(X, row0, col0, r_lo, r_hi, vals, idx, cnt, thr, cmax, k):
    """Feed row ``r`` of ``X`` (``r_lo <= r < r_hi``) to column ``col0 + r``: ``X[r, j]`` is
    that column's entry in row ``row0 + j``."""
    for r in range(r_lo, r_hi):
        col = col0 + r
        for j in range(X.shape[1]):
            x = X[r, j]
            if x > cmax[col]:
                cmax[col] = x
            if cnt[col] < k or x < thr[col]:
                _insert(vals, idx, cnt, thr, col, x, row0 + j, k)


@njit(cache=True, nogil=True)
def jaccard_rows(q_lo, q_hi, qstart, qcol, qval, cstart, grow, gval, qg, rowmax, lam, out):
    """Rows ``q_lo..q_hi`` of the re-ranked distance.

    Query q's sparse row of V is ``qcol``/``qval[qstart[q]:qstart[q+1]]``; the gallery rows of
    V are inverted by column (``cstart``: column c's entries are ``grow``/``gval[cstart[c]:
    cstart[c+1]]``, gallery row and value). ``Σ_c min(V_q[c], V_g[c])`` is accumulated in
    float32 like the reference; ``out[q, g] = (1 - s / (2 - s)) (1 - λ) + qg[q, g]² /
    rowmax[q] λ``.
    """
    G = out.shape[1]
    t = np.zeros(G, np.float32)
    for q in range(q_lo, q_hi):
        t[:] = 0
        for e in range(qstart[q], qstart[q + 1]):
            c = qcol[e]
            v = qval[e]
            for f in range(cstart[c], cstart[c + 1]):
                w = gval[f]
                t[grow[f]] += v if v < w else w
        rm = rowmax[q]
        for g in range(G):
            s = t[g]
            d = qg[q, g]
            out[q, g] = (np.float32(1.0) - s / (np.float32(2.0) - s)) * np.float32(1.0 - lam) \
                + np.float32(d * d) / rm * np.float32(lam)
