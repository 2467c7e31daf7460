"""The compiled per-query counting pass behind ``evaluate_rank`` (numba, no compiler needed).

For each query with sorted true matches ``(d_0, g_0) <= (d_1, g_1) <= ...`` (distance, then
global gallery index) the pass adds to ``wb[k]`` the number of gallery items of a block that
rank before match ``k``: item ``(d, g)`` ranks before it iff ``d < d_k``, or ``d == d_k`` and
``g < g_k`` (a stable sort). Items that are not wrong matches (the query's true matches and
per-query junk, listed in ``xg``) are subtracted again afterwards; global junk columns are
masked out of the counts.

Two ways to count, chosen per query by its number of matches ``m``:

* ``m <= LINEAR_MAX``: branch-free compare-and-count passes over the query's row, two matches
  per pass. The loops vectorise (SIMD), so the cost is about ``m × G / 16`` vector steps
  whatever the model's quality. Each pass counts ``d < d_k`` and ``d <= d_k``; only when the
  two differ by more than the match itself does a scalar pass settle the ties by index.
* more matches: one pass over the row skips every item ranked after the last match and places
  the others among the matches with a binary search (``m + 1`` bins, then a prefix sum).

Compiled lazily on first use and cached on disk (``cache=True``): two specialisations in all
(float32 and float64 distances). ``nogil`` lets the caller split the queries over threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

LINEAR_MAX = 64
#: Counts are summed as float32 ones (see ``_count2``): exact below 2^24 columns per call.
MAX_COLS = 1 << 24


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _count2(row, ok, n, has_ok, t0, t1):
    """(#x < t0, #x <= t0, #x < t1, #x <= t1) over ``row[:n]``, weighted by ``ok`` if ``has_ok``.

    Summed as float32 ones so LLVM vectorises the loop (``reassoc`` lets it split the sum into
    SIMD lanes); exact as long as ``n < 2^24``. Only reassociation is allowed: comparisons keep
    their IEEE meaning (inf, NaN).
    """
    zero = np.float32(0.0)
    a = np.float32(0.0)
    b = np.float32(0.0)
    c = np.float32(0.0)
    d = np.float32(0.0)
    if has_ok:
        for j in range(n):
            x = row[j]
            w = ok[j]
            a += w if x < t0 else zero
            b += w if x <= t0 else zero
            c += w if x < t1 else zero
            d += w if x <= t1 else zero
    else:
        one = np.float32(1.0)
        for j in range(n):
            x = row[j]
            a += one if x < t0 else zero
            b += one if x <= t0 else zero
            c += one if x < t1 else zero
            d += one if x <= t1 else zero
    return np.int64(a), np.int64(b), np.int64(c), np.int64(d)


@njit(cache=True, nogil=True)
def _before(row, ok, n, has_ok, t, col, lt, le):
    """Items of ``row[:n]`` ranked before a match at distance ``t`` and local index ``col``:
    ``lt`` (strictly closer) plus the equal ones left of ``col``. ``le - lt`` equal items were
    counted; the match itself is one of them when it lies in the row."""
    ties = le - lt
    if 0 <= col < n and row[col] == t:
        ties -= 1 if (not has_ok or ok[col] != 0.0) else 0
    if ties == 0:
        return lt
    c = lt
    for j in range(min(max(col, 0), n)):
        if row[j] == t and (not has_ok or ok[j] != 0.0):
            c += 1
    return c


@njit(cache=True, nogil=True, inline="always")
def _pos(md, mg, a, m, d, g):
    """Number of matches ``(md[a+k], mg[a+k])`` that are <= ``(d, g)`` lexicographically."""
    lo, hi = 0, m
    while lo < hi:
        mid = (lo + hi) >> 1
        x = md[a + mid]
        if x < d or (x == d and mg[a + mid] <= g):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def count_rows(D, r0, r1, q0, ncols, g0, mstart, md, mg, xstart, xg, ok, has_ok, wb):
    """Add to ``wb`` (one int64 slot per sorted match) the valid wrong matches ranked before
    each match, for rows ``r0..r1`` of block ``D`` (C-contiguous; row ``i`` is query
    ``q0 + i``; columns ``0..ncols`` are gallery items ``g0..g0 + ncols``, ``ncols < 2^24``).

    ``mstart`` (Q+1): query q's matches are ``md``/``mg[mstart[q]:mstart[q+1]]`` (distance in
    D's dtype, global gallery index), sorted by (distance, index). ``xstart``/``xg``: each
    query's excluded items (matches and per-query junk, global indices). ``ok`` (float32, one
    per block column) is 0 for items junk to every query and 1 otherwise; used if ``has_ok``.
    """
    mmax = 0
    for q in range(q0 + r0, q0 + r1):
        mmax = max(mmax, mstart[q + 1] - mstart[q])
    hist = np.zeros(mmax + 1, np.int64)
    gend = g0 + ncols
    for i in range(r0, r1):
        q = q0 + i
        a = mstart[q]
        m = mstart[q + 1] - a
        if m == 0:
            continue
        row = D[i]
        last = md[a + m - 1]
        hist[:m + 1] = 0
        if m <= LINEAR_MAX:
            for k in range(0, m, 2):
                k1 = min(k + 1, m - 1)
                t0, t1 = md[a + k], md[a + k1]
                lt0, le0, lt1, le1 = _count2(row, ok, ncols, has_ok, t0, t1)
                wb[a + k] += _before(row, ok, ncols, has_ok, t0, mg[a + k] - g0, lt0, le0)
                if k1 > k:
                    wb[a + k1] += _before(row, ok, ncols, has_ok, t1, mg[a + k1] - g0, lt1, le1)
        else:
            for j in range(ncols):
                d = row[j]
                if d <= last and (not has_ok or ok[j] != 0.0):
                    hist[_pos(md, mg, a, m, d, g0 + j)] += 1
        # Excluded items in this block (matches, per-query junk) were counted above: subtract.
        for x in range(xstart[q], xstart[q + 1]):
            g = xg[x]
            if g < g0 or g >= gend or (has_ok and ok[g - g0] == 0.0):
                continue
            d = row[g - g0]
            if d <= last:
                hist[_pos(md, mg, a, m, d, g)] -= 1
        c = 0
        for k in range(m):
            c += hist[k]
            wb[a + k] += c
