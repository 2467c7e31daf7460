"""The compiled counting pass of evaluate_rank against a slow reference on random problems:
both counting paths (few matches: vectorised compare-and-count; many: binary search), ties
(stable order: lower gallery index first), queries without valid matches, id -1 queries and
gallery items, galleries shorter than max_rank, both AP definitions, threads and column
blocks.

The reference sorts every row with a stable lexsort on (distance, index), removes junk and
walks the list: it shares no code with the pass."""

import numpy as np
import pytest
import torch

from reid_bench.eval import (
    AP_DEFINITIONS,
    _rank_kernel,
    evaluate_rank,
    evaluate_rank_chunked,
    relevance_from_ids,
)
from reid_bench.eval.metrics import evaluate_relevance
from reid_bench.eval.ranking import relevance_from_lists


def reference(D, qp, gp, qc, gc, max_rank, ap):
    """(cmc, mAP, per-query AP with NaN for skipped queries) by sorting and walking."""
    Q, G = D.shape
    aps, firsts = np.full(Q, np.nan), []
    for i in range(Q):
        order = np.lexsort((np.arange(G), D[i]))  # by distance, then gallery index
        junk = ((gp[order] == qp[i]) & (gc[order] == qc[i])) | (gp[order] == -1)
        good = (gp[order] == qp[i])[~junk]
        if qp[i] == -1 or not good.any():
            continue
        ranks = np.flatnonzero(good) + 1.0
        hits = np.arange(1, ranks.size + 1)
        prec = hits / ranks
        if ap == "standard":
            aps[i] = prec.mean()
        else:
            prev = np.where(ranks > 1, (hits - 1) / np.maximum(ranks - 1, 1), 1.0)
            aps[i] = ((prev + prec) / 2).mean()
        firsts.append(ranks[0])
    ok = ~np.isnan(aps)
    if not ok.any():
        return np.zeros(max_rank), 0.0, aps
    cmc = (np.asarray(firsts)[:, None] <= np.arange(1, max_rank + 1)[None]).mean(0)
    return cmc, float(aps[ok].mean()), aps


def problem(seed, Q, G, ids, levels=None):
    """Random ids (including -1), cameras and distances; ``levels`` → integer distances
    (many ties). Few ids → many matches per query (the binary-search path)."""
    rng = np.random.default_rng(seed)
    qp, gp = rng.integers(-1, ids, Q), rng.integers(-1, ids, G)
    qc, gc = rng.integers(0, 3, Q), rng.integers(0, 3, G)
    D = rng.integers(0, levels, (Q, G)) if levels else rng.random((Q, G))
    # one query whose every same-id item sits in its own camera: all junk → skipped
    qp[0], qc[0] = ids + 5, 0
    gp[:3], gc[:3] = ids + 5, 0
    return D.astype(np.float32), qp, gp, qc, gc


def check(D, qp, gp, qc, gc, max_rank, ap, **kw):
    res = evaluate_rank(D, qp, gp, qc, gc, max_rank=max_rank, ap=ap, return_details=True, **kw)
    cmc, mAP, aps = reference(D, qp, gp, qc, gc, max_rank, ap)
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-12, rtol=0)
    assert res.mAP == pytest.approx(mAP, abs=1e-12)
    np.testing.assert_allclose(res.ap, aps, atol=1e-12, rtol=0)  # NaN where skipped, alike
    return res


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
@pytest.mark.parametrize("levels", [None, 4, 40])
@pytest.mark.parametrize("ids", [2, 12], ids=["many-matches", "few-matches"])
def test_random_problems_equal_the_sorting_reference(ap, levels, ids):
    for seed in range(3):
        D, qp, gp, qc, gc = problem(seed, 17, 301, ids, levels)
        res = check(D, qp, gp, qc, gc, 20, ap)
        assert res.num_skipped >= 1  # the all-junk query (and any id -1 query)
    m = ((gp[None] == qp[:, None]) & (gc[None] != qc[:, None])).sum(1)
    # the problems do reach the intended counting path
    limit = _rank_kernel.LINEAR_MAX
    assert (m.max() > limit) if ids == 2 else (0 < m.max() <= limit)


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
def test_float64_threads_and_column_blocks_give_the_same_answer(ap, monkeypatch):
    D, qp, gp, qc, gc = problem(7, 40, 257, 3, 6)
    ref = check(D, qp, gp, qc, gc, 10, ap, threads=1)
    for kw in ({"threads": 3}, {"threads": 2}):
        r = evaluate_rank(D, qp, gp, qc, gc, max_rank=10, ap=ap, return_details=True, **kw)
        np.testing.assert_array_equal(r.ap, ref.ap)
    r64 = check(D.astype(np.float64), qp, gp, qc, gc, 10, ap)
    np.testing.assert_array_equal(r64.ap, ref.ap)
    # galleries wider than the kernel's column limit are cut into column blocks
    monkeypatch.setattr(_rank_kernel, "MAX_COLS", 20)
    rb = evaluate_rank(torch.from_numpy(D), qp, gp, qc, gc, max_rank=10, ap=ap, return_details=True)
    np.testing.assert_array_equal(rb.ap, ref.ap)


def test_gallery_shorter_than_max_rank_and_empty_positives():
    D, qp, gp, qc, gc = problem(3, 9, 6, 3, 3)
    check(D, qp, gp, qc, gc, 50, "standard")
    # no query has any valid match at all
    res = evaluate_rank(D, qp + 100, gp, qc, gc, max_rank=8, return_details=True)
    assert res.num_skipped == len(qp) and res.mAP == 0.0 and not res.cmc.any()
    # a gallery of id -1 only: everything is junk
    res = evaluate_rank(D, qp, np.full_like(gp, -1), qc, gc, max_rank=8, return_details=True)
    assert res.num_skipped == len(qp)


def test_ties_with_matches_on_both_sides_of_wrong_items():
    # one query, all distances equal: stable order is gallery order, so with
    # ids [w, M, w, w, M, M, w] the matches rank 2, 5, 6
    D = np.zeros((1, 7), np.float32)
    gp = np.array([7, 1, 7, 8, 1, 1, 9])
    res = evaluate_rank(D, [1], gp, [0], np.ones(7, int), max_rank=7, return_details=True)
    assert res.ap[0] == pytest.approx((1 / 2 + 2 / 5 + 3 / 6) / 3)
    np.testing.assert_array_equal(res.cmc, [0, 1, 1, 1, 1, 1, 1])


def test_infinite_and_nan_free_extremes_keep_ieee_order():
    # +inf distances (masked items) rank last; -0.0 == +0.0 ties by index
    D = np.array([[np.inf, -0.0, 0.0, 1.0, np.inf]], np.float32)
    gp = np.array([1, 2, 1, 3, 1])
    check(D, np.array([1]), gp, np.array([0]), np.ones(5, int), 5, "standard")


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
def test_streamed_chunks_and_explicit_lists_equal_the_reference(ap):
    D, qp, gp, qc, gc = problem(11, 12, 230, 2, 5)
    ref = evaluate_rank(D, qp, gp, qc, gc, max_rank=15, ap=ap, return_details=True)
    rel = relevance_from_ids(torch.from_numpy(qp), torch.from_numpy(qc), torch.from_numpy(gp),
                             torch.from_numpy(gc))
    Dt = torch.from_numpy(D)
    md = Dt[rel.match_q, rel.match_g]
    chunks = [(Dt[:, s:s + 37], s) for s in range(0, 230, 37)][::-1]
    res = evaluate_rank_chunked(chunks, rel, md, max_rank=15, ap=ap)
    np.testing.assert_array_equal(res.ap, ref.ap)
    np.testing.assert_array_equal(res.cmc, ref.cmc)
    # the same relevance spelled as explicit lists (Oxford-style ground truth)
    pos = [rel.match_g[rel.match_q == q].tolist() for q in range(12)]
    excl = [rel.excl_g[rel.excl_q == q].tolist() for q in range(12)]
    junk_cols = np.flatnonzero(gp == -1).tolist()
    lists = relevance_from_lists(12, 230, pos, [sorted(set(e) - set(p)) + junk_cols
                                                for e, p in zip(excl, pos, strict=True)])
    res_l = evaluate_relevance(Dt, lists, max_rank=15, ap=ap)
    np.testing.assert_allclose(res_l.ap, ref.ap, atol=1e-12)
