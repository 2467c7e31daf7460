"""Small helpers shared by the evaluation modules: input conversion and validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def as_tensor(x: Any, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """numpy array, torch tensor or sequence → torch tensor (no copy when already a tensor on
    ``device`` with ``dtype``)."""
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        # from_numpy shares memory; non-writeable or non-native arrays need a copy first.
        arr = x if (x.flags.writeable and x.dtype.isnative) else np.array(x)
        t = torch.from_numpy(arr)
    else:
        t = torch.as_tensor(np.asarray(x))
    if device is not None and t.device != torch.device(device):
        t = t.to(device)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    return t


def check_choice(kind: str, value: str, valid: tuple[str, ...] | list[str]) -> None:
    """Raise ValueError naming the valid values when ``value`` is not one of them."""
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid values: {', '.join(valid)}")
