"""What ``train_stage`` needs of the ``--shakedown`` tier (``reid_bench.table.shakedown``): the step
limit of the current cell and a probe per training stage (first/last loss, seconds and images
per step, peak memory). Kept apart from ``shakedown.py``, which plans cells and therefore
imports the registry and the spec: a training module must not depend on those (its code
fingerprint would then cover every method)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import torch

from ..core.scoped import Scoped


class _Run:
    def __init__(self, steps: int):
        self.steps = steps
        self.stages: list[dict[str, Any]] = []


_RUN: Scoped[_Run | None] = Scoped("reid_bench_shakedown", None)


def step_limit() -> int | None:
    """Optimisation steps each ``train_stage`` may run (None outside a shakedown)."""
    run = _RUN.get()
    return None if run is None else run.steps


@contextlib.contextmanager
def collect(opts: Any) -> Iterator[list[dict[str, Any]] | None]:
    """Within the block, ``train_stage`` stops after ``opts.steps`` steps per stage and appends
    one record per stage to the yielded list (``opts``: ``shakedown.ShakedownOptions``).
    ``opts`` None: a no-op yielding None."""
    if opts is None:
        yield None
        return
    with _RUN.use(_Run(opts.steps)) as run:
        yield run.stages


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StageProbe:
    """Measures one stage of a shakedown; ``train_stage`` calls ``start``/``loss``/``stop``
    around each step and ``finish`` at the end (which files the record)."""

    def __init__(self, stage: str, device: Any):
        self.device = torch.device(device)
        self.record: dict[str, Any] = {"stage": stage, "steps": 0, "losses": [],
                                       "step_s": [], "images": []}
        self._t = 0.0
        run = _RUN.get()
        if run is not None:  # filed now, so a diverged stage still leaves its record
            run.stages.append(self.record)

    def start(self, batch: Any = None) -> None:
        self.record["images"].append(_count_images(batch))
        _sync(self.device)
        self._t = time.perf_counter()

    def loss(self, value: float) -> None:
        """The step's loss, already read to the host by the training loop."""
        self.record["losses"].append(float(value))

    def stop(self) -> None:
        _sync(self.device)
        self.record["step_s"].append(time.perf_counter() - self._t)
        self.record["steps"] += 1

    def finish(self) -> None:
        if self.device.type == "cuda":
            self.record["peak_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20


def _count_images(batch: Any) -> int:
    """Images in a training batch: the leading size of every 4-D (N×C×H×W) or 5-D (pairs:
    N×2×C×H×W) float tensor in it, pairs counted twice."""
    if torch.is_tensor(batch):
        if batch.is_floating_point() and batch.dim() == 4:
            return int(batch.shape[0])
        if batch.is_floating_point() and batch.dim() == 5:
            return int(batch.shape[0] * batch.shape[1])
        return 0
    if isinstance(batch, (list, tuple)):
        return sum(_count_images(b) for b in batch)
    if isinstance(batch, dict):
        return sum(_count_images(b) for b in batch.values())
    return 0


# ---------------------------------------------------------------- per-cell record
def begin_cell(device: torch.device) -> None:
    """Start a cell's peak-memory window (CUDA)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[float | None, str]:
    """(MiB, kind): CUDA peak allocated since ``begin_cell``, or the process's peak RSS."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1), "cuda_max_allocated"
    try:
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1), \
            "cpu_max_rss_process"
    except (ImportError, OSError):  # pragma: no cover — no resource module (Windows)
        return None, ""


def summary(stages: list[dict[str, Any]] | None, device: torch.device) -> dict[str, Any]:
    """What a shakedown cell records: per-stage records, first loss (first stage's first step),
    last loss (last stage's last step), seconds per step (mean over the steps after each
    stage's first, which pays for warm-up; the first when a stage ran one step), peak memory.
    """
    stages = [s for s in stages or [] if s["steps"] or s["losses"]]
    losses = [x for s in stages for x in s["losses"]]
    times = [t for s in stages for t in (s["step_s"][1:] or s["step_s"][:1])]
    # Training images per second over the same steps (the --dry-run estimate reads it).
    imgs = [n for s in stages for n in (s.get("images", [])[1:] or s.get("images", [])[:1])]
    mem, kind = peak_memory(device)
    return {"stages": stages, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "step_s": round(sum(times) / len(times), 4) if times else None,
            "img_per_s": (round(sum(imgs) / sum(times), 2)
                          if times and sum(times) > 0 and sum(imgs) else None),
            "peak_mem_mb": mem, "peak_mem_kind": kind}


