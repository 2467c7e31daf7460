"""Seeding every random number generator a training draws from."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch's (CPU and every CUDA device)
    with ``seed``; with ``deterministic``, also ask torch for deterministic kernels (a warning,
    not an error, where an operation has none). The runner calls it before each cell; a method
    calls it where a stage must draw the same numbers whether an earlier stage was trained or
    loaded from the cache (``models/fmn.py``)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
