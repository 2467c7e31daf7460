"""Synthetic Market-1501-sized evaluation problems (features with a trained model's difficulty).

Market-1501 test split shape: 3,368 queries and 15,913 gallery images (751 identities plus
distractors, id 0), six cameras, 2048-d features. Features = identity centre + camera shift +
per-image noise, scaled so that CMC/mAP look like a ResNet-50 baseline (rank-1 ≈ 90 %,
mAP ≈ 70–80 %); ``noise`` controls the difficulty (a larger noise → a deeper last match → more
work for rank-aware evaluators; ``noise=None`` gives pure random features, the worst case).
"""

from __future__ import annotations

import numpy as np
import torch

NUM_Q, NUM_G, DIM, NUM_IDS, NUM_CAMS = 3368, 15913, 2048, 751, 6

#: Model qualities of the evaluation sweep: ``noise`` of ``market_like`` at 2048-d, and the
#: rank-1 / mAP it gives (measured on the full problem; None = pure random features).
QUALITIES = {
    "strong": 2.8,       # rank-1 ≈ 0.99, mAP ≈ 0.76 (a good ResNet-50 on Market-1501)
    "mid": 4.2,          # rank-1 ≈ 0.3, mAP ≈ 0.1 (an early epoch, a hard dataset)
    "weak": 7.0,         # rank-1 ≈ 0.02, mAP ≈ 0.007 (an untrained network, a smoke run)
    "near_random": None,  # rank-1 ≈ 0.003, mAP ≈ 0.002
}


def market_like(num_q: int = NUM_Q, num_g: int = NUM_G, dim: int = DIM, *, noise: float | None = 1.1,
                num_distractors: int = 2793, seed: int = 0):
    """Return (qf, gf, q_pids, g_pids, q_camids, g_camids) as float32 torch / int64 numpy."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, NUM_IDS + 1, num_q)
    n_real = num_g - num_distractors
    g_pids = np.concatenate([rng.integers(1, NUM_IDS + 1, n_real), np.zeros(num_distractors, dtype=np.int64)])
    q_cams = rng.integers(0, NUM_CAMS, num_q)
    g_cams = rng.integers(0, NUM_CAMS, num_g)
    if noise is None:
        qf = torch.randn(num_q, dim, generator=g)
        gf = torch.randn(num_g, dim, generator=g)
    else:
        centres = torch.randn(NUM_IDS + 1, dim, generator=g)
        cams = 0.4 * torch.randn(NUM_CAMS, dim, generator=g)
        qf = centres[q_pids] + cams[q_cams] + noise * torch.randn(num_q, dim, generator=g)
        gf = centres[g_pids] + cams[g_cams] + noise * torch.randn(num_g, dim, generator=g)
        # distractors (id 0): people of their own, drawn like everybody else
        others = torch.randn(num_distractors, dim, generator=g)
        gf[n_real:] = others + cams[g_cams[n_real:]] + noise * torch.randn(num_distractors, dim, generator=g)
    return qf, gf, q_pids, g_pids, q_cams, g_cams
