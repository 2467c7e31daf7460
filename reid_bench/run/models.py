"""Step 2 of a cell (``run/runner.py``): ``Models.get(prepared)`` → ``(model, Trained)``: the
model from memory (the latest training of this run), else from the artefact cache, else
trained (``cellfit.fit_or_load``); and the ``--eval-every`` monitoring of a training."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .. import history
from ..engine.train import LoopSettings
from ..history import Monitor
from ..store import results
from ..store.outcome import Prepared, Trained
from ..table import shakedown
from .cellfit import FitNotes, FitSettings, fit_or_load


class Models:
    """The trained models of one run. ``opts``: the run's ``RunOptions`` (checkpointing,
    history, ``--weights`` files, shakedown); ``cache``: its ``ArtifactCache``; ``cells_dir``:
    the table's cell folder (work folders); ``tensorboard``: this table's event folder or None;
    ``before_fit``: ``CellHooks.before_fit``."""

    def __init__(self, opts: Any, *, device: torch.device, accel: Any, num_workers: int,
                 cache: Any, cells_dir: Path, tensorboard: Path | None,
                 before_fit: Callable[[Prepared], None] | None = None):
        self.opts, self.device, self.accel = opts, device, accel
        self.num_workers, self.cache, self.cells_dir = num_workers, cache, cells_dir
        self.tensorboard, self.before_fit = tensorboard, before_fit
        # The latest trained model, by training hash, with its provenance.
        self._memory: dict[str, tuple[torch.nn.Module, Trained]] = {}
        # The shakedown stages of the latest training, by training hash (None: no shakedown).
        self._stages: dict[str, Any] = {}

    def get(self, prepared: Prepared, *, monitor: Any = None,
            notes: FitNotes | None = None) -> tuple[torch.nn.Module, Trained]:
        """The model of ``prepared`` and its provenance. ``monitor``: the ``--eval-every``
        monitoring (``history.Monitor``) of a training; ``notes`` is filled as the training
        goes (kept when it raises)."""
        notes = notes if notes is not None else FitNotes()
        thash = prepared.training_hash
        if thash in self._memory:
            model, trained = self._memory[thash]
            return model, replace(trained, from_memory=True)
        if self.before_fit is not None:
            self.before_fit(prepared)
        model, trained = self.fit(prepared, monitor=monitor, notes=notes)
        # Keep only the latest (bounded memory), with what a reusing cell records of it.
        self._memory = {thash: (model, trained)}
        return model, trained

    def fit(self, prepared: Prepared, *, monitor: Any = None,
            notes: FitNotes | None = None) -> tuple[torch.nn.Module, Trained]:
        """``cellfit.fit_or_load`` of ``prepared`` with this run's settings: the artefact cache,
        else a training (never the memory: the other ranks of a distributed job train in
        lockstep with rank 0, ``run/launch/worker.py``)."""
        from ..weights import use_overrides

        notes = notes if notes is not None else FitNotes()
        cell, opts = prepared.cell, self.opts
        run = FitSettings(self.device, self.accel, self.cache, self.num_workers,
                          opts.checkpoint_every, opts.deterministic,
                          LoopSettings(opts.checkpoint_minutes, progress=not opts.quiet),
                          every_steps=opts.log_every_steps, monitor=monitor,
                          tensorboard=(None if self.tensorboard is None
                                       else self.tensorboard / cell.id))
        # opts.weights: --weights NAME=PATH, files replacing a backbone's ImageNet weights.
        with shakedown.collect(opts.shakedown) as stages, use_overrides(opts.weights):
            try:
                model, trained = fit_or_load(
                    prepared, work=results.cell_file(self.cells_dir, f".work-{cell.id}"),
                    run=run, notes=notes)
            finally:
                self._stages = {prepared.training_hash: stages}
                if stages is not None:  # a diverged cell keeps its losses too
                    notes.shakedown = shakedown.summary(stages, self.device)
        # Where the full history (with its rows every N steps) lies, inside the results folder.
        with contextlib.suppress(ValueError):
            trained = replace(trained, history_file=(Path(trained.artifact) / history.FILE)
                              .relative_to(opts.results_dir).as_posix())
        return model, trained

    def shakedown_summary(self, prepared: Prepared) -> dict[str, Any] | None:
        """``table.shakedown.summary`` of the training of ``prepared`` (its stages, and the
        peak memory so far, evaluation included); None outside a shakedown."""
        if self.opts.shakedown is None:
            return None
        return shakedown.summary(self._stages.get(prepared.training_hash), self.device)


def monitoring(prepared: Prepared, evaluate: Callable[[Prepared, torch.nn.Module], Any],
               every: int) -> Monitor:
    """The ``--eval-every`` monitoring of a cell: ``evaluate`` (the cell's protocol) every
    ``every`` epochs on the stages that train the cell's final network (the class
    ``method.build`` returns; FMN's stage-1 GRN or LEDF's verification networks are not)."""
    final: list[type] = []

    def accepts(model: torch.nn.Module) -> bool:
        if not final:
            final.append(type(prepared.architecture()))
        return type(model) is final[0]

    return Monitor(every, lambda model: dict(evaluate(prepared, model).metrics), accepts)
