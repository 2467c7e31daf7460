"""evaluate_rank against hand-computed cases and a slow argsort reference written from the
definitions (Market-1501 compute_AP.m for the trapezoid rule)."""

import numpy as np
import pytest
import torch

from reid_bench.eval import AP_DEFINITIONS, evaluate_rank


def slow_reference(D, qp, gp, qc, gg_c, max_rank, ap):
    """Stable argsort per query, drop junk, walk the list (independent of the fast path)."""
    cmcs, aps = [], []
    for i in range(len(qp)):
        order = np.argsort(D[i], kind="stable")
        junk = ((gp[order] == qp[i]) & (gg_c[order] == qc[i])) | (gp[order] == -1)
        good = (gp[order] == qp[i])[~junk]
        if qp[i] == -1 or not good.any():
            continue
        cmc = np.zeros(max_rank)
        first = int(np.argmax(good))
        cmc[first:] = 1.0
        cmcs.append(cmc)
        hits, prev_prec, prev_rec, total = 0, 1.0, 0.0, 0.0
        precs = []
        for k, g in enumerate(good):
            hits += int(g)
            prec, rec = hits / (k + 1), hits / good.sum()
            if g:
                precs.append(prec)
            total += (rec - prev_rec) * (prev_prec + prec) / 2
            prev_prec, prev_rec = prec, rec
        aps.append(np.mean(precs) if ap == "standard" else total)
    if not aps:
        return None
    return np.mean(cmcs, 0), float(np.mean(aps)), len(qp) - len(aps)


# One query (id 1, camera 0). Gallery, in distance order:
#   wrong (id 2), MATCH, junk (same id+cam), distractor (id 0), MATCH, junk (id -1), MATCH
D1 = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]], dtype=np.float32)
G1_PIDS = np.array([2, 1, 1, 0, 1, -1, 1])
G1_CAMS = np.array([1, 1, 0, 1, 2, 1, 3])


def test_hand_case_standard_ap_junk_and_distractors():
    # valid list: wrong, MATCH(rank 2), distractor, MATCH(4), MATCH(5)
    cmc, mAP = evaluate_rank(D1, np.array([1]), G1_PIDS, np.array([0]), G1_CAMS, max_rank=5)
    assert mAP == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3, abs=1e-12)
    np.testing.assert_allclose(cmc, [0, 1, 1, 1, 1])


def test_hand_case_market_matlab_trapezoid():
    # each match adds 1/3 × (precision one item earlier + precision here) / 2:
    # rank 2: (0/1 + 1/2)/2, rank 4: (1/3 + 2/4)/2, rank 5: (2/4 + 3/5)/2  → 73/180
    cmc, mAP = evaluate_rank(D1, [1], G1_PIDS, [0], G1_CAMS, max_rank=5, ap="market_matlab")
    assert mAP == pytest.approx(73 / 180, abs=1e-12)
    np.testing.assert_allclose(cmc, [0, 1, 1, 1, 1])


def test_match_at_rank_one_trapezoid_uses_initial_precision_one():
    # MATLAB starts old_precision at 1: a first-ranked match contributes (1 + 1)/2.
    D = np.array([[0.1, 0.2, 0.3]])
    _, ap_m = evaluate_rank(D, [1], [1, 2, 1], [0], [1, 1, 1], ap="market_matlab", max_rank=3)
    # rank 1: (1 + 1)/2 = 1; rank 3: (1/2 + 2/3)/2 = 7/12; AP = (1 + 7/12)/2
    assert ap_m == pytest.approx((1 + 7 / 12) / 2)
    _, ap_s = evaluate_rank(D, [1], [1, 2, 1], [0], [1, 1, 1], max_rank=3)
    assert ap_s == pytest.approx((1 + 2 / 3) / 2)


def test_query_without_valid_match_is_skipped_and_counted():
    D = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])
    # query 0 (id 1, cam 0): its only same-id image is in camera 0 → junk → no valid match
    # query 1 (id 2, cam 0): match at distance 0.2, behind id 1 (0.1? no: row 1 distances)
    q_p, q_c = [1, 2], [0, 0]
    g_p, g_c = [1, 2, 3], [0, 1, 1]
    res = evaluate_rank(D, q_p, g_p, q_c, g_c, max_rank=3, return_details=True)
    assert res.num_skipped == 1 and res.num_queries == 2
    assert np.isnan(res.ap[0])
    # query 1 valid list: id 3 (0.1), MATCH (0.2) (id 1 at 0.3 is a wrong match after) → AP 1/2
    assert res.mAP == pytest.approx(0.5)
    np.testing.assert_allclose(res.cmc, [0, 1, 1])


def test_all_queries_without_match_gives_zero_not_nan():
    res = evaluate_rank(np.zeros((2, 2)), [5, 6], [1, 2], [0, 0], [1, 1], max_rank=2, return_details=True)
    assert res.mAP == 0.0 and res.num_skipped == 2
    np.testing.assert_array_equal(res.cmc, [0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ties_rank_the_lower_gallery_index_first(dtype):
    # all three at the same distance: stable order = gallery order
    D = np.array([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], dtype=dtype)
    # query 0 (id 1): wrong, MATCH, wrong → rank 2; query 1 (id 2): MATCH first → rank 1
    res = evaluate_rank(D, [1, 3], [3, 1, 2], [0, 0], [1, 1, 1], max_rank=3, return_details=True)
    np.testing.assert_allclose(res.ap, [0.5, 1.0])
    np.testing.assert_allclose(res.cmc, [0.5, 1, 1])


def test_tie_between_matches_and_wrong_items_straddling_blocks():
    # several matches share one distance with wrong items on both sides of them in index order
    D = np.array([[0.2, 0.2, 0.1, 0.2, 0.2, 0.2]], dtype=np.float32)
    g_p = [9, 1, 1, 8, 1, 7]
    # order: idx2 MATCH(0.1), then 0.2 ties by index: 0 w, 1 MATCH, 3 w, 4 MATCH, 5 w
    # matches at ranks 1, 3, 5 → AP = (1 + 2/3 + 3/5)/3
    _, mAP = evaluate_rank(D, [1], g_p, [0], [1] * 6, max_rank=6)
    assert mAP == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_gallery_smaller_than_max_rank_keeps_final_cmc_value():
    # torchreid's cython path leaves stale values past the gallery end; ours stays at the
    # final value (every query with a match finds it within the gallery).
    D = np.array([[0.3, 0.1, 0.2], [0.1, 0.2, 0.3]])
    cmc, _ = evaluate_rank(D, [1, 2], [1, 5, 2], [0, 0], [1, 1, 1], max_rank=10)
    # query 0: order 5(w), 2(w), 1(M) → rank 3; query 1: order 1(w), 5(w), 2(M) → rank 3
    np.testing.assert_allclose(cmc, [0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    assert cmc.shape == (10,)


def test_negative_distances_and_torch_inputs():
    D = torch.tensor([[-0.3, -0.5, 0.2, -0.0]])
    # order: idx1 (-0.5, w), idx0 (-0.3, M), idx3 (-0.0, w), idx2 (0.2, M)
    cmc, mAP = evaluate_rank(D, torch.tensor([1]), torch.tensor([1, 2, 1, 3]), torch.tensor([0]),
                             torch.tensor([1, 1, 1, 1]), max_rank=4)
    assert mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    np.testing.assert_allclose(cmc, [0, 1, 1, 1])


def test_no_camera_filter_protocol_counts_same_camera_matches():
    cmc, mAP = evaluate_rank(D1, [1], G1_PIDS, [0], G1_CAMS, max_rank=5, protocol="no_camera_filter")
    # now index 2 (same camera) is a match: valid order w, M, M, d, M, M (id -1 still junk)
    assert mAP == pytest.approx((1 / 2 + 2 / 3 + 3 / 5 + 4 / 6) / 4)


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
@pytest.mark.parametrize("discrete", [False, True])
def test_random_cases_match_slow_reference(ap, discrete):
    rng = np.random.default_rng(1 if discrete else 2)
    for _ in range(12):
        Q, G = rng.integers(1, 25), rng.integers(1, 60)
        qp, gp = rng.integers(-1, 6, Q), rng.integers(-1, 6, G)
        qc, gc = rng.integers(0, 3, Q), rng.integers(0, 3, G)
        D = (rng.integers(0, 4, (Q, G)) if discrete else rng.random((Q, G))).astype(np.float32)
        res = evaluate_rank(D, qp, gp, qc, gc, max_rank=8, ap=ap, return_details=True)
        ref = slow_reference(D, qp, gp, qc, gc, 8, ap)
        if ref is None:
            assert res.num_skipped == Q and res.mAP == 0.0
            continue
        np.testing.assert_allclose(res.cmc, ref[0], atol=1e-12)
        assert res.mAP == pytest.approx(ref[1], abs=1e-12)
        assert res.num_skipped == ref[2]
        # float64 input takes the other code path and must agree exactly
        cmc64, map64 = evaluate_rank(D.astype(np.float64), qp, gp, qc, gc, max_rank=8, ap=ap)
        np.testing.assert_allclose(cmc64, res.cmc)
        assert map64 == pytest.approx(res.mAP, abs=1e-12)


def _random_problem(seed, Q=40, G=300):
    rng = np.random.default_rng(seed)
    return (rng.random((Q, G)).astype(np.float32), rng.integers(1, 12, Q), rng.integers(0, 12, G),
            rng.integers(0, 4, Q), rng.integers(0, 4, G))


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
def test_properties_monotone_bounded_permutation_invariant(ap):
    D, qp, gp, qc, gc = _random_problem(3)
    cmc, mAP = evaluate_rank(D, qp, gp, qc, gc, max_rank=50, ap=ap)
    assert np.all(np.diff(cmc) >= 0) and 0 <= cmc[0] and cmc[-1] <= 1
    assert 0 <= mAP <= 1
    res = evaluate_rank(D, qp, gp, qc, gc, max_rank=50, ap=ap, return_details=True)
    ok = ~np.isnan(res.ap)
    assert np.all((res.ap[ok] >= 0) & (res.ap[ok] <= 1))
    perm = np.random.default_rng(4).permutation(D.shape[1])
    cmc_p, map_p = evaluate_rank(D[:, perm], qp, gp[perm], qc, gc[perm], max_rank=50, ap=ap)
    np.testing.assert_allclose(cmc_p, cmc)
    assert map_p == pytest.approx(mAP, abs=1e-12)


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
def test_perfect_ranking_scores_one(ap):
    D, qp, gp, qc, gc = _random_problem(5)
    match = (gp[None] == qp[:, None]) & (gc[None] != qc[:, None])
    D = D + 2.0 * (~match)  # every true match closer than every other item
    cmc, mAP = evaluate_rank(D, qp, gp, qc, gc, max_rank=5, ap=ap)
    assert mAP == pytest.approx(1.0)
    np.testing.assert_allclose(cmc, 1.0)


def test_invalid_arguments_raise_with_valid_values():
    with pytest.raises(ValueError, match="market_matlab"):
        evaluate_rank(D1, [1], G1_PIDS, [0], G1_CAMS, ap="trapezoid")
    with pytest.raises(ValueError, match="market"):
        evaluate_rank(D1, [1], G1_PIDS, [0], G1_CAMS, protocol="duke")
    with pytest.raises(ValueError, match="7 gallery ids"):
        evaluate_rank(D1[:, :3], [1], G1_PIDS, [0], G1_CAMS[:3])
