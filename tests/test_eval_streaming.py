"""Chunked (streamed) evaluation equals the in-memory evaluation exactly."""

import numpy as np
import pytest
import torch

from reid_bench.eval import (
    AP_DEFINITIONS,
    StreamingRankEvaluator,
    evaluate_rank,
    evaluate_rank_chunked,
    relevance_from_ids,
)


def _problem(seed, Q=30, G=300, discrete=False):
    rng = np.random.default_rng(seed)
    D = rng.integers(0, 6, (Q, G)) if discrete else rng.random((Q, G))
    return (torch.from_numpy(D.astype(np.float32)), torch.from_numpy(rng.integers(1, 8, Q)),
            torch.from_numpy(rng.integers(-1, 8, G)), torch.from_numpy(rng.integers(0, 3, Q)),
            torch.from_numpy(rng.integers(0, 3, G)))


@pytest.mark.parametrize("ap", AP_DEFINITIONS)
@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("chunk", [13, 64, 300])
def test_chunked_equals_in_memory(ap, discrete, chunk):
    D, qp, gp, qc, gc = _problem(chunk, discrete=discrete)  # discrete → ties across chunks
    ref = evaluate_rank(D, qp, gp, qc, gc, max_rank=20, ap=ap, return_details=True)
    rel = relevance_from_ids(qp, qc, gp, gc)
    md = D[rel.match_q, rel.match_g]
    starts = list(range(0, D.shape[1], chunk))
    np.random.default_rng(0).shuffle(starts)  # chunk order must not matter
    res = evaluate_rank_chunked(((D[:, s:s + chunk], s) for s in starts), rel, md, max_rank=20, ap=ap)
    np.testing.assert_array_equal(res.cmc, ref.cmc)
    assert res.mAP == ref.mAP
    np.testing.assert_array_equal(np.isnan(res.ap), np.isnan(ref.ap))
    assert res.num_skipped == ref.num_skipped


def test_streaming_memory_is_per_match_not_per_gallery_item():
    D, qp, gp, qc, gc = _problem(1)
    rel = relevance_from_ids(qp, qc, gp, gc)
    ev = StreamingRankEvaluator(rel, D[rel.match_q, rel.match_g])
    assert ev.counts.size == rel.match_q.numel()
