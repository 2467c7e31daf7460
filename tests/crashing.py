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


def linear_toy_stage(ckpt, epochs: int) -> list[dict]:
    """A seeded 4→2 linear model trained by ``train_stage`` for ``epochs`` epochs on two random
    batches, checkpointing to ``ckpt`` every epoch (the checkpoint identity and unpickling
    tests); returns its history."""
    from reid_bench.engine.recipe import OptimRecipe
    from reid_bench.engine.train import train_stage

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(2)]

    def step(batch):
        x, y = batch
        return F.cross_entropy(model(x), y), {}

    return train_stage(model, data, step, OptimRecipe(lr=0.1, epochs=epochs),
                       checkpoint=ckpt, checkpoint_every=1)
