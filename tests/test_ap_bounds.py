"""``eval/ap_bounds.map_interval`` against brute force: every ranking of a few queries in a small
gallery, each query's AP computed by the real evaluator (``evaluate_rank``), grouped by CMC."""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pytest

from reid_bench.eval.ap_bounds import MatchBounds, ap_first_rank, ap_of_ranks, map_interval
from reid_bench.eval.metrics import evaluate_rank
from reid_bench.eval.ranking import AP_DEFINITIONS


@cache
def _ap_by_evaluator(ranks: tuple[int, ...], G: int, ap: str) -> float:
    """AP of one query whose true matches are at 1-based ``ranks`` of a G-item gallery, from
    ``evaluate_rank`` (distance = rank, so the ranking is exactly the placement)."""
    g_pids = np.full(G, 2)
    g_pids[np.asarray(ranks) - 1] = 1
    dist = np.arange(G, dtype=np.float64)[None]
    _, mAP = evaluate_rank(dist, np.array([1]), g_pids, np.array([0]), np.ones(G, int),
                           max_rank=G, ap=ap)
    return float(mAP)


def _placements(b: MatchBounds):
    for n in range(b.n_min, b.n_max + 1):
        yield from itertools.combinations(range(1, b.gallery + 1), n)


def _brute(b: MatchBounds, ap: str, ks: tuple[int, ...], Q: int):
    """(CMC at ks, mAP) of every multiset of Q query placements."""
    places = list(_placements(b))
    aps = np.array([_ap_by_evaluator(p, b.gallery, ap) for p in places])
    first = np.array([p[0] for p in places])
    hits = (first[:, None] <= np.array(ks)[None]).astype(np.int64)
    for combo in itertools.combinations_with_replacement(range(len(places)), Q):
        idx = list(combo)
        yield tuple(hits[idx].sum(0)), aps[idx].mean()


CASES = [(MatchBounds(1, 1, 6), (1, 3), 3), (MatchBounds(1, 1, 5), (2,), 4),
         (MatchBounds(1, 1, 6), (1, 2, 4), 3), (MatchBounds(2, 2, 5), (1, 2), 3),
         (MatchBounds(1, 2, 5), (1, 3), 3), (MatchBounds(1, 3, 5), (1, 4, 5), 2),
         (MatchBounds(2, 3, 5), (1,), 3)]


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
@pytest.mark.parametrize("bounds,ks,Q", CASES, ids=[f"n{b.n_min}-{b.n_max}_G{b.gallery}_k{ks}"
                                                      for b, ks, _ in CASES])
def test_interval_equals_brute_force(bounds, ks, Q, ap):
    """Exact CMC: the interval is the brute-force min/max of every ranking with that CMC.
    Boxed CMC (± one query): the min/max of every ranking whose CMC falls in the box."""
    seen: dict[tuple, list[float]] = {}
    for hits, m in _brute(bounds, ap, ks, Q):
        lo_hi = seen.setdefault(hits, [np.inf, -np.inf])
        lo_hi[0], lo_hi[1] = min(lo_hi[0], m), max(lo_hi[1], m)
    assert len(seen) > 1
    for hits, (lo, hi) in seen.items():
        got = map_interval({k: (h / Q, h / Q) for k, h in zip(ks, hits, strict=True)}, bounds, ap)
        assert got is not None, hits
        assert got == pytest.approx((lo, hi), abs=1e-12), hits
    for hits in list(seen)[:: max(1, len(seen) // 6)]:
        box = {k: (max(0, h - 1) / Q, min(Q, h + 1) / Q) for k, h in zip(ks, hits, strict=True)}
        inside = [m for c, ms in seen.items() for m in ms
                  if all(box[k][0] * Q <= x <= box[k][1] * Q for k, x in zip(ks, c, strict=True))]
        got = map_interval(box, bounds, ap)
        assert got == pytest.approx((min(inside), max(inside)), abs=1e-12), (hits, box)


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
def test_impossible_cmc_has_no_interval(ap):
    b = MatchBounds(1, 1, 5)
    assert map_interval({1: (0.6, 0.6), 2: (0.4, 0.4)}, b, ap) is None  # decreasing
    assert map_interval({5: (0.9, 0.9)}, b, ap) is None  # every query matches by rank 5
    # ... but an interval that reaches 1 is fine
    assert map_interval({5: (0.9, 1.0)}, b, ap) is not None


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_ap_of_ranks_is_the_evaluator(ap, n):
    G = 7
    for p in itertools.combinations(range(1, G + 1), n):
        assert ap_of_ranks(np.array([p]), ap)[0] == pytest.approx(_ap_by_evaluator(p, G, ap))


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
def test_first_rank_bounds_bracket_every_placement(ap):
    b = MatchBounds(1, 3, 6)
    lo, hi = ap_first_rank(b, ap)
    for p in _placements(b):
        v = _ap_by_evaluator(p, b.gallery, ap)
        assert lo[p[0] - 1] - 1e-12 <= v <= hi[p[0] - 1] + 1e-12


def test_single_shot_closed_forms():
    """One match: standard AP = 1/r, the trapezoid (1/r + [r = 1]) / 2 (issue 26's numbers)."""
    lo, hi = ap_first_rank(MatchBounds(1, 1, 100), "standard")
    r = np.arange(1, 101)
    assert np.allclose(lo, 1 / r) and np.allclose(hi, 1 / r)
    lo, _ = ap_first_rank(MatchBounds(1, 1, 100), "market_matlab")
    assert np.allclose(lo, (1 / r + (r == 1)) / 2)
