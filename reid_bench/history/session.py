"""The history of one training as it runs: ``train_stage`` asks ``stage_log`` for its stage's
log and reports each step and epoch to it; the log appends rows to the current ``History``
(set by the runner around a method's ``fit`` with ``use``), which rewrites its ``metrics.csv``
atomically after every row, mirrors rows to TensorBoard when asked, runs the optional
monitoring evaluation and warns when a loss has not decreased after a quarter of training.

Without a current ``History`` (a method trained outside the runner) nothing is recorded.
A resumed stage (``begin(stage, step)``) first drops the rows of that stage past the step its
checkpoint holds, so a crash and resume never duplicates rows.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import ResultsError
from ..core.scoped import Scoped
from . import csvfile
from .csvfile import Row

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0  # the longest a steps row waits in memory before the file is rewritten


@dataclass(frozen=True)
class Monitor:
    """Monitoring evaluation every ``every`` epochs: ``evaluate(model)`` → metrics (percent)
    of the cell's protocol, run on the stages whose network ``accepts(model)`` (the cell's
    final network, not e.g. FMN's stage-1 GRN)."""

    every: int
    evaluate: Callable[[torch.nn.Module], dict[str, float]]
    accepts: Callable[[torch.nn.Module], bool]


class History:
    """The rows of one training, kept in ``path`` (None: in memory only). Rows already in
    ``path`` (a crashed run's) are read back and continued."""

    def __init__(self, path: Path | None = None, *, every_steps: int = 0,
                 monitor: Monitor | None = None, tensorboard: Path | None = None):
        self.path = None if path is None else Path(path)
        self.every_steps = max(0, int(every_steps))
        self.monitor = monitor
        self.tensorboard = None if tensorboard is None else Path(tensorboard)
        self.rows: list[Row] = []
        if self.path is not None:
            try:
                self.rows = csvfile.read_rows(self.path)
            except ResultsError as exc:  # a damaged work file: start the history afresh
                log.warning("not continuing the training history: %s", exc)
        self.started: list[str] = []  # stages begun in this process, in order
        self._tb: dict[str, Any] = {}
        self._flushed = time.monotonic()

    # ------------------------------------------------------------------ rows
    def add(self, row: Row) -> None:
        """Append ``row``; the file is rewritten (atomically) at once for epoch and monitoring
        rows, for ``steps`` rows at most every ``FLUSH_SECONDS``: a rewrite per step would cost
        O(rows²) on a long run, and a crash loses only steps rows past the last checkpoint,
        which a resume drops anyway."""
        self.rows.append(row)
        if row["kind"] != "steps" or time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()
        if self.tensorboard is not None:
            from .tensorboard import write_row

            write_row(self._writer(row["stage"], None), row, flush=row["kind"] != "steps")

    def flush(self) -> None:
        self._flushed = time.monotonic()
        if self.path is not None:
            csvfile.write_rows(self.path, self.rows)

    def rows_of(self, stages: list[str]) -> list[Row]:
        return [r for r in self.rows if r["stage"] in stages]

    def mark(self) -> int:
        """A point to ask ``stages_since`` about (nested artefacts keep their own stages)."""
        return len(self.started)

    def stages_since(self, mark: int) -> list[str]:
        return self.started[mark:]

    def import_rows(self, rows: list[Row]) -> None:
        """Add the history of a cached stage (an artefact trained before), replacing any rows
        of its stages."""
        stages = {r["stage"] for r in rows}
        self.rows = [r for r in self.rows if r["stage"] not in stages] + list(rows)
        self.started += [s for s in dict.fromkeys(r["stage"] for r in rows)]
        self.flush()
        if self.tensorboard is not None:
            from .tensorboard import write_row

            for r in rows:
                write_row(self._writer(r["stage"], None), r)

    def begin(self, stage: str, resumed_step: int) -> str:
        """Start (or resume at ``resumed_step``) ``stage``: its rows past that step are
        dropped. Returns the stage's name in the history (a name repeated within one
        training gets ``#2``, ``#3``...)."""
        name, k = stage, 1
        while name in self.started:
            k += 1
            name = f"{stage}#{k}"
        self.started.append(name)
        before = len(self.rows)
        self.rows = [r for r in self.rows if r["stage"] != name or r["step"] <= resumed_step]
        if len(self.rows) != before:
            log.info("[%s] history: dropped %d row(s) past step %d (resumed)", name,
                     before - len(self.rows), resumed_step)
            self.flush()
        if self.tensorboard is not None:
            self._writer(name, resumed_step + 1)
        return name

    def _writer(self, stage: str, purge_step: int | None) -> Any:
        if stage not in self._tb:
            from .tensorboard import open_writer

            # One folder per stage: purge_step (events past a resumed step) is per folder.
            self._tb[stage] = open_writer(self.tensorboard / _safe(stage), purge_step)
        return self._tb[stage]

    def close(self) -> None:
        if self.path is not None and self.rows:
            self.flush()  # pending steps rows
        for w in self._tb.values():
            w.close()
        self._tb.clear()


def _safe(stage: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stage)


_CURRENT: Scoped[History | None] = Scoped("history", None)


def current() -> History | None:
    return _CURRENT.get()


@contextlib.contextmanager
def use(history: History | None) -> Iterator[History | None]:
    """Record every ``train_stage`` inside into ``history``."""
    try:
        with _CURRENT.use(history):
            yield history
    finally:
        if history is not None:
            history.close()


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Leave torch (CPU and CUDA), numpy and Python RNG states as they were: a monitoring
    evaluation must not change which batches or dropout masks training draws next."""
    cpu, py, npy = torch.get_rng_state(), random.getstate(), np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        random.setstate(py)
        np.random.set_state(npy)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _images(batch: Any) -> int:
    """Samples in a batch: the first dimension of its first tensor."""
    while isinstance(batch, (list, tuple, dict)) and batch:
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return int(batch.shape[0]) if isinstance(batch, torch.Tensor) and batch.dim() else 0


def _lrs(opt: torch.optim.Optimizer) -> dict[str, float]:
    return {f"lr_group{i}": float(g["lr"]) for i, g in enumerate(opt.param_groups)}


class StageLog:
    """What ``train_stage`` reports to: ``step`` after each optimisation step, ``epoch``
    after each epoch. A no-op without a current ``History`` or off the main rank."""

    def __init__(self, history: History | None, stage: str, epochs: int, step: int,
                 world: int = 1):
        self.history, self.epochs, self.world = history, epochs, max(1, world)
        self.stage = history.begin(stage, step) if history is not None else stage
        self._sums: dict[str, float] = {}
        self._n = self._images = self._epoch_images = 0
        self._t0 = time.perf_counter()
        self._warned = False

    def step(self, epoch: int, step: int, lr: float, loss: float, scalars: dict[str, float],
             batch: Any, opt: torch.optim.Optimizer) -> None:
        """After global step ``step`` (1-based) of 0-based ``epoch``: a ``steps`` row every
        ``every_steps`` steps (means over the steps since the last row of this epoch)."""
        h = self.history
        if h is None:
            return
        n_img = _images(batch) * self.world
        self._epoch_images += n_img
        if not h.every_steps:
            return
        self._n += 1
        self._images += n_img
        self._sums["loss"] = self._sums.get("loss", 0.0) + loss
        for k, v in scalars.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v)
        if step % h.every_steps:
            return
        secs = time.perf_counter() - self._t0
        h.add({"stage": self.stage, "kind": "steps", "epoch": epoch + 1, "step": step,
               "epochs": self.epochs, "seconds": secs,
               "img_per_s": self._images / secs if secs > 0 else None, "lr": lr, **_lrs(opt),
               **{k: v / self._n for k, v in self._sums.items()}})
        self._sums, self._n, self._images, self._t0 = {}, 0, 0, time.perf_counter()

    def epoch(self, epoch: int, step: int, rec: dict[str, float], opt: torch.optim.Optimizer,
              model: torch.nn.Module, *, monitor: bool = True) -> None:
        """After 0-based ``epoch`` (``rec``: its mean scalars, ``lr`` and ``seconds``): the
        epoch row, then, when due, the monitoring evaluation's row."""
        h = self.history
        if h is None:
            return
        secs = float(rec.get("seconds", 0.0))
        scal = {k: float(v) for k, v in rec.items() if k not in ("epoch", "lr", "seconds")}
        h.add({"stage": self.stage, "kind": "epoch", "epoch": epoch + 1, "step": step,
               "epochs": self.epochs, "seconds": secs,
               "img_per_s": self._epoch_images / secs if secs > 0 else None,
               "lr": float(rec["lr"]), **_lrs(opt), **scal})
        # A steps row averages steps of one epoch: a resumed run (from an epoch's end) then
        # writes the same rows as an uninterrupted one.
        self._epoch_images, self._sums, self._n, self._images = 0, {}, 0, 0
        self._t0 = time.perf_counter()
        if epoch + 1 == -(-self.epochs // 4) and not self._warned:
            for why in csvfile.plateaued(h.rows_of([self.stage])):
                self._warned = True
                log.warning("%s: check the learning rate and the data", why)
        m = h.monitor
        if not (monitor and m is not None and m.every and (epoch + 1) % m.every == 0):
            return
        t0 = time.perf_counter()
        # Each submodule's own mode: a frozen part kept in eval mode (FMN's stage-1 GRN in
        # stage 2) must not come back in train mode and update its BatchNorm statistics.
        modes = [(mod, mod.training) for mod in model.modules()]
        # Everything the monitor does (even building a network to learn its class draws
        # initial weights) leaves the RNGs and the mode as they were.
        with preserved_rng(), torch.no_grad():
            try:
                metrics = m.evaluate(model) if m.accepts(model) else None
            finally:
                for mod, was in modes:
                    mod.training = was
        if metrics is not None:
            h.add({"stage": self.stage, "kind": "monitor", "epoch": epoch + 1, "step": step,
                   "epochs": self.epochs, "seconds": time.perf_counter() - t0,
                   **{k: float(v) for k, v in metrics.items()}})
            log.info("[%s] monitoring (not the result) after epoch %d: %s", self.stage,
                     epoch + 1, " ".join(f"{k}={v:.2f}" for k, v in metrics.items()))


def stage_log(stage: str, epochs: int, step: int, *, main: bool = True,
              world: int = 1) -> StageLog:
    """The log ``train_stage`` reports ``stage`` (``epochs`` planned, resumed at global
    ``step``, 0 when fresh) to; only the main rank of a distributed run records."""
    return StageLog(current() if main else None, stage, epochs, step, world)
