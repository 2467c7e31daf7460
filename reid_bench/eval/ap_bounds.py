"""Which mAP values a printed CMC allows, under each AP definition (``ranking.AP_DEFINITIONS``).

A published row prints CMC rank-k rates and an mAP that were computed on the same queries. When
the number of true matches per query is bounded (CUHK03 classic single-shot: exactly one, in a
gallery of one image per identity), the CMC bounds the mAP: a query whose first true match is
at rank r has an AP between ``ap_first_rank(r, ...)``'s two values, whatever the other matches
do, and the CMC says how many queries have their first match in each band of ranks. The mAP of
any ranking consistent with the CMC then lies in the interval ``map_interval`` returns; a printed
mAP outside it cannot have been produced by that AP definition.

The queries are a mixture (repeats, splits, averaged), so the CMC is a distribution of first
ranks and the bound is the linear program over it: exact for any number of queries whose CMC
is the given one (``tests/test_ap_bounds.py`` checks it against brute-force enumeration).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from .ranking import AP_DEFINITIONS


@dataclass(frozen=True)
class MatchBounds:
    """What a protocol guarantees about every evaluated query: between ``n_min`` and ``n_max``
    true matches, ranked among at most ``gallery`` valid gallery items."""

    n_min: int
    n_max: int
    gallery: int

    def __post_init__(self):
        if not 1 <= self.n_min <= self.n_max <= self.gallery:
            raise ValueError(f"MatchBounds needs 1 <= n_min <= n_max <= gallery, got {self}")


def ap_of_ranks(ranks: np.ndarray, ap: str) -> np.ndarray:
    """AP of queries whose true matches sit at the 1-based ``ranks`` (Q×n, increasing along a
    row), as ``ranking.metrics_from_counts`` computes it: "standard" the mean precision at each
    match, "market_matlab" the trapezoid of ``compute_AP.m`` (precision before and at each
    match averaged)."""
    if ap not in AP_DEFINITIONS:
        raise ValueError(f"unknown ap {ap!r}; valid values: {', '.join(AP_DEFINITIONS)}")
    r = np.asarray(ranks, dtype=np.float64)
    j = np.arange(r.shape[-1], dtype=np.float64)  # true matches ranked before each match
    prec = (j + 1.0) / r
    if ap == "standard":
        return prec.mean(-1)
    prev = np.where(r > 1, j / np.maximum(r - 1.0, 1.0), 1.0)
    return ((prev + prec) / 2.0).mean(-1)


def ap_first_rank(bounds: MatchBounds, ap: str) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) AP of a query whose first true match is at rank r, for r = 1..R
    (arrays of length R = gallery − n_min + 1; a rank no query can have its first match at is
    NaN). Every AP definition here grows when a match moves up, so the highest AP packs the
    other matches right after the first, the lowest pushes them to the end of the gallery."""
    G = bounds.gallery
    R = G - bounds.n_min + 1
    r = np.arange(1, R + 1, dtype=np.float64)[:, None]
    lo = np.full(R, np.inf)
    hi = np.full(R, -np.inf)
    for n in range(bounds.n_min, bounds.n_max + 1):
        ok = r[:, 0] <= G - n + 1
        rest = np.arange(1, n, dtype=np.float64)[None, :]
        top = ap_of_ranks(np.concatenate([r, r + rest], 1), ap)
        low = ap_of_ranks(np.concatenate([r, (G - n + 1) + rest + 0 * r], 1), ap)
        lo = np.where(ok, np.minimum(lo, low), lo)
        hi = np.where(ok, np.maximum(hi, top), hi)
    lo[~np.isfinite(lo)] = np.nan
    hi[~np.isfinite(hi)] = np.nan
    return lo, hi


def _chain_max(coef: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float | None:
    """max of coef·C over non-decreasing C with lo <= C <= hi, or None when no such C exists.
    A vertex of this polytope takes every C_i from the bounds' values, so a dynamic programme
    over those candidate values is exact: best[v] = best objective of C_1..C_i with C_i = v."""
    vals = np.unique(np.concatenate([lo, hi]))
    best = np.zeros(vals.size)
    for i in range(coef.size):
        ok = (vals >= lo[i]) & (vals <= hi[i])
        reach = best if i == 0 else np.maximum.accumulate(best)  # any C_{i-1} <= C_i
        best = np.where(ok, reach + coef[i] * vals, -np.inf)
    top = best.max()
    return float(top) if np.isfinite(top) else None


def map_interval(cmc: dict[int, tuple[float, float]], bounds: MatchBounds,
                 ap: str) -> tuple[float, float] | None:
    """The (lowest, highest) mAP, as fractions, of any ranking whose CMC at rank k lies in
    ``cmc[k]`` (a closed interval of fractions, e.g. a printed value ± half its last digit),
    for queries as ``bounds`` says, under AP definition ``ap``. None when no ranking has such a
    CMC (it decreases, or stays below 1 where every query must have found a match)."""
    if not cmc:
        raise ValueError("map_interval needs at least one CMC rank")
    lo_f, hi_f = ap_first_rank(bounds, ap)
    R = lo_f.size
    ks = sorted(cmc)
    if ks[0] < 1:
        raise ValueError(f"CMC ranks are 1-based, got {ks[0]}")
    clo = np.array([max(0.0, cmc[k][0]) for k in ks])
    chi = np.array([min(1.0, cmc[k][1]) for k in ks])
    # Past the last rank a first match can have, every query has one: CMC = 1 there.
    clo = np.where(np.array(ks) >= R, 1.0, clo)
    # Bands of first ranks (a, b]: before the first printed rank, between them, after the last.
    edges = [0] + [min(k, R) for k in ks] + [R]
    band_lo = np.empty(len(edges) - 1)
    band_hi = np.empty(len(edges) - 1)
    for i, (a, b) in enumerate(pairwise(edges)):
        if b > a:
            band_lo[i], band_hi[i] = np.nanmin(lo_f[a:b]), np.nanmax(hi_f[a:b])
        else:  # an empty band holds no queries: its coefficient never matters
            band_lo[i] = band_hi[i] = 0.0
    # mAP = Σ_i (C_i − C_{i−1}) v_i + (1 − C_m) v_{m+1}: linear in C with coefficients
    # v_i − v_{i+1}, plus v_{m+1}; v the band's lowest AP for the minimum, highest for the max.
    top = _chain_max(band_hi[:-1] - band_hi[1:], clo, chi)
    neg_low = _chain_max(band_lo[1:] - band_lo[:-1], clo, chi)
    if top is None or neg_low is None:
        return None
    return band_lo[-1] - neg_low, top + band_hi[-1]
