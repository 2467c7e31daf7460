"""A seeded toy training whose step can crash on purpose: the resume and checkpoint tests
(test_train_loop, test_reliability) train it with ``train_stage``."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from reid_bench.data.samplers import make_loader


def crashing_training(model: torch.nn.Module, n: int, shape: tuple[int, ...], classes: int, *,
                      crash_at_step: int | None = None, sleep: float = 0.0):
    """(loader, step) over ``n`` seeded random images of ``shape`` in ``classes`` classes,
    batches of 8: ``step`` is cross-entropy of ``model`` and raises ``RuntimeError("injected
    crash")`` at its ``crash_at_step``-th call (1-based); ``sleep`` seconds per step."""
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(n, *shape, generator=g),
                         torch.randint(0, classes, (n,), generator=g))
    loader = make_loader(data, 8, shuffle=True, seed=0, drop_last=True)
    calls = {"n": 0}

    def step(batch):
        calls["n"] += 1
        if calls["n"] == crash_at_step:
            raise RuntimeError("injected crash")
        time.sleep(sleep)  # a step slower than tqdm's refresh interval shows the postfix
        x, y = batch
        return F.cross_entropy(model(x), y), {}

    return loader, step
