"""re_rank against a slow re-implementation of k-reciprocal re-ranking written here from the
paper (Zhong et al., CVPR 2017, Eqs. 4-12) with the conventions of the authors' released code:
squared distances normalised by each row's maximum, the expansion rule |R(q,k/2) ∩ R(p,k)| >
2/3 |R(q,k/2)| with k/2 rounded half-to-even, Jaccard 1 - Σmin / (2 - Σmin)."""

import numpy as np
import pytest
import torch

from reid_bench.eval import re_rank


def reciprocal(rank, i, k):
    """R(i, k): i's k nearest (k+1 with itself) that have i among their own k+1 nearest."""
    return [j for j in rank[i][:k + 1] if i in rank[j][:k + 1]]


def slow_rerank(qg, qq, gg, k1, k2, lam):
    Q = qg.shape[0]
    full = np.block([[qq, qg], [qg.T, gg]]).astype(np.float64) ** 2
    full = full.astype(np.float32)
    N = full.shape[0]
    d = np.array([[full[j, i] / full[:, i].max() for j in range(N)] for i in range(N)], dtype=np.float32)
    rank = [list(np.argsort(d[i], kind="stable")) for i in range(N)]
    V = np.zeros((N, N), dtype=np.float64)
    half = int(round(k1 / 2))
    for i in range(N):
        R = reciprocal(rank, i, k1)
        expanded = set(R)
        for c in R:
            Rc = reciprocal(rank, c, half)
            if len(set(Rc) & set(R)) > 2 / 3 * len(Rc):
                expanded |= set(Rc)
        idx = sorted(expanded)
        w = np.exp(-d[i, idx].astype(np.float64))
        V[i, idx] = w / w.sum()
    if k2 != 1:
        V = np.array([V[rank[i][:k2]].mean(0) for i in range(N)])
    out = np.zeros((Q, N - Q))
    for i in range(Q):
        for j in range(Q, N):
            s = np.minimum(V[i], V[j]).sum()
            out[i, j - Q] = (1 - s / (2 - s)) * (1 - lam) + d[i, j] * lam
    return out


def _problem(seed, Q, G, dim=8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(Q + G, dim)).astype(np.float32)
    x[Q:Q + Q // 2] += x[:Q // 2]  # some queries have near-duplicates in the gallery
    x[Q:Q + Q // 2] *= 0.5
    dist = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)).astype(np.float32)
    return dist[:Q, Q:], dist[:Q, :Q], dist[Q:, Q:]


@pytest.mark.parametrize("Q,G,k1,k2,lam", [(12, 40, 20, 6, 0.3), (10, 35, 5, 3, 0.5), (8, 30, 7, 1, 0.1)])
def test_matches_slow_reference_from_the_paper(Q, G, k1, k2, lam):
    qg, qq, gg = _problem(Q * G + k1, Q, G)
    ours = re_rank(qg, qq, gg, k1=k1, k2=k2, lambda_value=lam)
    ref = slow_rerank(qg, qq, gg, k1, k2, lam)
    assert isinstance(ours, np.ndarray) and ours.shape == (Q, G) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)


def test_torch_in_torch_out_and_lambda_one_is_normalised_distance():
    qg, qq, gg = _problem(0, 6, 20)
    out = re_rank(torch.from_numpy(qg), torch.from_numpy(qq), torch.from_numpy(gg), lambda_value=1.0)
    assert isinstance(out, torch.Tensor)
    # λ = 1 keeps only the original term: squared distance over the row maximum of the full matrix
    full = np.block([[qq, qg], [qg.T, gg]]) ** 2
    expect = (qg ** 2) / full[:6].max(1, keepdims=True)
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-6)


def test_output_is_a_convex_blend_of_two_unit_range_distances():
    # Jaccard distance and the row-normalised squared distance both lie in [0, 1].
    qg, qq, gg = _problem(3, 10, 40)
    out = re_rank(qg, qq, gg, lambda_value=0.3)
    assert out.min() >= 0 and out.max() <= 1 + 1e-6


def test_bad_shapes_raise():
    qg, qq, gg = _problem(0, 6, 20)
    with pytest.raises(ValueError, match="q_q"):
        re_rank(qg, gg, gg)


def test_compiled_cpu_steps_equal_the_torch_device_steps():
    # CPU runs the compiled column top-k and Jaccard; other devices run the torch versions.
    # Both are checked here on CPU, also with threads and float64 inputs.
    from reid_bench.eval import rerank
    qg, qq, gg = (torch.from_numpy(a) for a in _problem(5, 15, 60))
    nn_c, rm_c = rerank._neighbours_cpu(qg, qq, gg, 8, threads=1)
    nn_t, rm_t = rerank._neighbours_torch(qg, qq, gg, 8)
    torch.testing.assert_close(nn_c, nn_t, rtol=0, atol=0)
    torch.testing.assert_close(rm_c, rm_t, rtol=0, atol=0)
    nn_3, rm_3 = rerank._neighbours_cpu(qg.double(), qq.double(), gg.double(), 8, threads=3)
    torch.testing.assert_close(nn_3, nn_c, rtol=0, atol=0)
    ref = re_rank(qg, qq, gg, k1=7, k2=3, threads=1)
    torch.testing.assert_close(re_rank(qg, qq, gg, k1=7, k2=3, threads=3), ref, rtol=0, atol=0)
    # the torch Jaccard step on the same sparse V
    vr = torch.tensor([0, 0, 1, 15, 16, 16, 40])  # sorted rows: 3 query and 4 gallery entries
    vc = torch.tensor([2, 20, 3, 2, 20, 3, 2])
    vv = torch.rand(7)
    N, Q, G = 75, 15, 60
    rm = torch.rand(N) + 1
    a = rerank._jaccard_blend(vr, vc, vv, qg, rm, Q, G, N, 0.3, 1 << 10)
    b = rerank._jaccard_blend_cpu(vr, vc, vv, qg, rm, Q, G, N, 0.3, 2)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
