"""compute_distance against direct formulas."""

import numpy as np
import pytest
import torch

from reid_bench.eval import DISTANCES, compute_distance


def _feats():
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(11, 5)).astype(np.float32)


def test_euclidean_squared_and_cosine_match_direct_formulas():
    q, g = _feats()
    diff = q[:, None] - g[None]
    sq = (diff ** 2).sum(-1)
    np.testing.assert_allclose(compute_distance(q, g, "sqeuclidean").numpy(), sq, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(compute_distance(q, g, "euclidean").numpy(), np.sqrt(sq), rtol=1e-5, atol=1e-5)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(compute_distance(q, g, "cosine").numpy(), 1 - qn @ gn.T, atol=1e-6)


@pytest.mark.parametrize("metric", DISTANCES)
def test_blocks_do_not_change_the_result(metric):
    q, g = _feats()
    full = compute_distance(torch.from_numpy(q), torch.from_numpy(g), metric)
    blocked = compute_distance(q, g, metric, block_rows=2)
    np.testing.assert_allclose(blocked.numpy(), full.numpy(), atol=1e-6)


def test_self_distance_is_zero_not_negative():
    q, _ = _feats()
    d = compute_distance(q, q, "euclidean").numpy()
    assert (d >= 0).all() and np.abs(np.diag(d)).max() < 1e-3


def test_bad_metric_and_shapes():
    q, g = _feats()
    with pytest.raises(ValueError, match="cosine"):
        compute_distance(q, g, "manhattan")
    with pytest.raises(ValueError, match="same D"):
        compute_distance(q, g[:, :3])
