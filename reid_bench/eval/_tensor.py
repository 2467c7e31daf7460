"""Small helpers shared by the evaluation modules: input conversion, validation, and running
the compiled kernels on worker threads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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


def num_threads(threads: int | None) -> int:
    """``threads``, or torch's thread count when None; at least 1."""
    return max(1, torch.get_num_threads() if threads is None else int(threads))


def run_parallel(fn: Callable[[int, int], Any], ranges: Sequence[tuple[int, int]]) -> None:
    """Run ``fn(lo, hi)`` for every range, on threads when there are several (the compiled
    kernels release the GIL; each range must write its own part of the output)."""
    if len(ranges) == 1:
        fn(*ranges[0])
        return
    with ThreadPoolExecutor(len(ranges)) as ex:
        for f in [ex.submit(fn, lo, hi) for lo, hi in ranges]:
            f.result()
