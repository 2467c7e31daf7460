"""Run a table's planned cells (reid_bench.table.plan): skip finished ones, run the rest.

A cell runs in four typed steps (docs/architecture.md): ``prepare`` → ``Prepared`` (method,
params, recipe, datasets, input preprocessing, training key; ``run/prepare.py``),
``models.get`` → ``(model, Trained)`` (memory, artefact cache or training; ``run/models.py``),
``evaluate`` → ``Result`` (``run/evaluate.py``), and ``record(CellOutcome)``
(``store/cellrow.py``: one CSV row with provenance and the cell's JSON). This module holds the
orchestration: leases, skipping finished cells, turning exceptions into statuses, the summary
and the log. A failing cell is recorded with its error and the run moves on; the caller gets a
summary and exits non-zero if any cell did not finish ok.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core import orphans
from ..core.console import progress
from ..core.errors import DatasetError, DiskFullError, DivergedError, RegistryError
from ..core.faults import fault_point
from ..core.hashing import stable_hash
from ..core.preempt import Preempted
from ..data.base import ReidDataset, resolve_data_root
from ..data.samplers import default_num_workers
from ..engine.accel import resolve as resolve_accel
from ..engine.artifacts import ArtifactCache
from ..spec import Spec
from ..store import lease, results
from ..store.cellrow import record
from ..store.outcome import CellOutcome, Prepared, Result, Trained
from ..table import shakedown
from ..table.finished import DataFingerprints, is_finished
from ..table.plan import Cell, cell_config
from ..weights.store import WeightsError
from .cellfit import FitNotes
from .evaluate import EvalSettings, evaluate
from .hooks import CellHooks
from .models import Models, monitoring
from .prepare import BadCellFiles, Preparer

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    results_dir: Path = Path("results")
    data_root: Path | None = None
    device: str = "cpu"
    smoke: bool = False
    force: bool = False
    num_workers: int | None = 0  # None: data.samplers.default_num_workers for the device
    checkpoint_every: int = 0
    deterministic: bool = False
    # Speed switches (reid_bench.engine.accel.AccelOptions; None = its defaults for the device) and
    # how cells are launched (local | torchrun | slurm; see reid_bench.run.launch).
    accel: Any = None
    launcher: str = "local"
    nproc: int = 1
    # --set recipe overrides {dotted key: value} (reid_bench.table.overrides), validated by the CLI.
    overrides: dict[str, Any] = field(default_factory=dict)
    # --shakedown settings (reid_bench.table.shakedown.ShakedownOptions); None: not a shakedown.
    shakedown: Any = None
    subset: bool = False  # --subset: the dataset's counts are not checked (cells say "subset")
    checkpoint_minutes: float = 0.0  # also checkpoint when this much time passed (0: never)
    quiet: bool = False  # no progress bars (epochs, cells)
    # --weights NAME=PATH: backbone name → weights file used instead of its ImageNet set (the
    # cell's config and training key hold their sha256, plan.weights_key).
    weights: dict[str, str] = field(default_factory=dict)
    # Training history (reid_bench.history): a metrics.csv row every this many steps besides
    # the epoch rows (0: epochs only); a monitoring evaluation every this many epochs (0:
    # none; never the result); TensorBoard event files under this folder, one per cell.
    log_every_steps: int = 0
    eval_every: int = 0
    tensorboard: Path | None = None
    # Trained-model artefact root (None: results_dir / "_artifacts"); a shared one lets runs
    # into different results folders reuse trained models.
    artifacts_dir: Path | None = None


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already done (finished ok)
    running_elsewhere: list[str] = field(default_factory=list)  # another runner holds its lease
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (cell, status, error)

    @property
    def ok(self) -> bool:
        return not self.failed


class Runner:
    """Runs the cells of one spec with ``RunOptions``; datasets are loaded once per run.
    ``hooks``: what a launcher adds to each cell (``CellHooks``); ``wrap_cache``: how this
    process sees the artefact cache (the ranks of a torchrun job share rank 0's decisions)."""

    def __init__(self, spec: Spec, opts: RunOptions, hooks: CellHooks | None = None,
                 wrap_cache: Callable[[ArtifactCache], Any] | None = None):
        self.spec, self.opts = spec, opts
        self.hooks = hooks or CellHooks()
        self.started = time.time()
        self.csv = results.table_csv(opts.results_dir, spec.paper.id, spec.table.id)
        self.cells_dir = results.cell_dir(opts.results_dir, spec.paper.id, spec.table.id)
        # Shakedown trainings (a few steps) live apart and are retrained on every run, so they
        # can never stand in for a real training.
        root = Path(opts.artifacts_dir or Path(opts.results_dir) / "_artifacts")
        self.cache = (ArtifactCache(root, refresh=opts.force) if opts.shakedown is None else
                      ArtifactCache(root / "_shakedown", refresh=True))
        if wrap_cache is not None:
            self.cache = wrap_cache(self.cache)
        self.device = torch.device(opts.device)
        self.data_root = resolve_data_root(opts.data_root)
        # The speed switches depend only on the options and the device: resolved once.
        self.accel = resolve_accel(opts.accel, self.device)
        self.num_workers = (default_num_workers(self.device) if opts.num_workers is None
                            else opts.num_workers)
        self.preparer = Preparer(opts, self.data_root, self.accel)
        tb = opts.tensorboard
        self.models = Models(opts, device=self.device, accel=self.accel,
                             num_workers=self.num_workers, cache=self.cache,
                             cells_dir=self.cells_dir, before_fit=self.hooks.before_fit,
                             tensorboard=(None if tb is None else Path(tb) / spec.paper.id
                                          / spec.table.id))
        self.eval_settings = EvalSettings(self.device, self.num_workers, self.accel)
        self.fingerprints = DataFingerprints(self.data_root, load=self.load)

    # ---------------------------------------------------------------- resolution
    def load(self, name: str, options: dict) -> ReidDataset:
        """``Preparer.load``: a dataset, loaded and checked once per run."""
        return self.preparer.load(name, options)

    def data_fingerprint(self, config: dict[str, Any]) -> str | None:
        """``finished.cell_fingerprint`` of the data a cell with ``config`` runs on, or None
        when it does not load (the cell then runs, and records why it could not)."""
        return self.fingerprints.of_config(config)

    def cell_config(self, cell: Cell) -> dict[str, Any]:
        """``plan.cell_config`` of ``cell`` with this run's options."""
        return cell_config(self.spec, cell, self.opts)

    def prepare(self, cell: Cell, config: dict[str, Any] | None = None) -> Prepared:
        """Step 1: ``cell`` (with ``config``, default ``cell_config(cell)``) ready to train."""
        config = self.cell_config(cell) if config is None else config
        return self.preparer.prepare(cell, config, stable_hash(config))

    def evaluate(self, prepared: Prepared, model: torch.nn.Module) -> Result:
        """Step 3: ``run.evaluate.evaluate`` with this run's device, workers and switches."""
        return evaluate(prepared, model, self.eval_settings)

    # ---------------------------------------------------------------- running
    def run(self, cells: list[Cell]) -> RunSummary:
        summary = RunSummary()
        results.refuse_id_clashes(self.csv, [c.key for c in cells])
        # Temporary files and build folders of killed runs (never a live runner's).
        orphans.sweep(self.opts.results_dir, self.started, busy=lease.guard_held)
        rows = {} if self.opts.force else results.cell_rows(self.csv)
        bar = progress(cells, desc="cells", unit="cell", enabled=not self.opts.quiet, leave=True)
        for i, cell in enumerate(bar, 1):
            tag = f"[{i}/{len(cells)}] {cell.label}"
            try:
                config = self.cell_config(cell)
                chash = stable_hash(config)
            except DatasetError as exc:
                now = time.time()
                self._record(CellOutcome(self.spec, cell, "not_run", str(exc), now, now))
                summary.failed.append((cell.id, "not_run", str(exc)))
                log.info("%s: not run —\n%s", tag, indent(str(exc)))
                continue
            fingerprint = None if self.opts.force else self.data_fingerprint(config)
            if is_finished(rows.get(cell.key), chash, fingerprint):
                summary.skipped.append(cell.id)
                log.info("%s: already done, skipped (--force recomputes)", tag)
                continue
            held = lease.take(self.cells_dir, cell.id)
            if held is None:  # not done yet: counted apart from the finished ones
                summary.running_elsewhere.append(cell.id)
                log.info("%s: being run by another runner, skipped", tag)
                continue
            try:
                # Another runner may have finished it between our CSV read and the lease.
                if not self.opts.force and is_finished(results.cell_rows(self.csv).get(cell.key),
                                                       chash, fingerprint):
                    summary.skipped.append(cell.id)
                    log.info("%s: finished by another runner, skipped", tag)
                    continue
                log.info("%s: running", tag)
                outcome = self.run_cell(cell, config, chash)
            finally:
                held.release()
            if outcome.ok:
                summary.done.append(cell.id)
                m = outcome.result.metrics
                log.info("%s: ok — %s", tag, ", ".join(f"{k} {v:.2f}" for k, v in m.items()))
            else:
                summary.failed.append((cell.id, outcome.status, outcome.error))
                log.info("%s: %s —\n%s", tag, outcome.status, indent(outcome.error))
        return summary

    def run_cell(self, cell: Cell, config: dict, chash: str) -> CellOutcome:
        """Run the leased ``cell`` (``config``, hash ``chash``) through the four steps and
        record its outcome, whatever it is; the ``hooks`` around it."""
        if self.hooks.on_start is not None:
            self.hooks.on_start(cell)
        try:
            outcome = self._attempt(cell, config, chash)
        except Preempted as exc:  # stopped on a signal, checkpoint saved: not a failure
            if self.hooks.on_preempted is not None:
                self.hooks.on_preempted(cell, exc)
            raise
        if self.hooks.on_outcome is not None:
            self.hooks.on_outcome(outcome)
        return outcome

    def _attempt(self, cell: Cell, config: dict, chash: str) -> CellOutcome:
        started = time.time()
        # The parts reached so far (the record of a failed attempt has them) and what a
        # training learned before it raised (FitNotes).
        prepared: Prepared | None = None
        trained: Trained | None = None
        result: Result | None = None
        fingerprint: str | None = None
        notes = FitNotes()
        status, msg, tb = "ok", "", None
        try:
            prepared = self.preparer.prepare_base(cell, config, chash)
            fingerprint = prepared.dataset_fingerprint
            # Apart: a failure here (a training image that passed the file check but does not
            # decode) is recorded with the prepared parts above.
            prepared = self.preparer.with_preprocessing(prepared)
            shakedown.begin_cell(self.device)
            monitor = (monitoring(prepared, self.evaluate, self.opts.eval_every)
                       if self.opts.eval_every and self.opts.shakedown is None else None)
            model, trained = self.models.get(prepared, monitor=monitor, notes=notes)
            fault_point("evaluate")
            result = self.evaluate(prepared, model)
            if self.opts.shakedown is not None:
                notes.shakedown = self.models.shakedown_summary(prepared)
        except BadCellFiles as exc:  # the data is broken, not missing: the cell failed
            status, msg, fingerprint = "failed", str(exc), exc.dataset_fingerprint
        except DivergedError as exc:
            status, msg = "diverged", f"{exc} (step {exc.step})"
        except (RegistryError, DatasetError, WeightsError) as exc:
            status, msg = "not_run", str(exc)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # one failing cell never stops the table
            tb = traceback.format_exc()
            status, msg = "failed", f"{type(exc).__name__}: {exc}"
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                msg += (" — the GPU ran out of memory: lower the batch size in the spec's recipe "
                        "or evaluate on --device cpu")
            elif isinstance(exc, DiskFullError):
                msg = str(exc)
        # Recorded outside the except block: the failure's traceback, whose frames may hold a
        # failed write's file (and its disk space), is gone by now. A record that cannot be
        # written either (DiskFullError) stops the run; the CSV is untouched.
        outcome = CellOutcome(
            self.spec, cell, status, msg, started, time.time(), config=config, config_hash=chash,
            dataset_fingerprint=fingerprint, prepared=prepared, trained=trained, result=result,
            code_fingerprint=notes.code_fingerprint, shakedown=notes.shakedown, traceback=tb)
        self._record(outcome)
        if outcome.ok:
            shutil.rmtree(results.cell_file(self.cells_dir, f".work-{cell.id}"),
                          ignore_errors=True)
        return outcome

    def _record(self, outcome: CellOutcome) -> None:
        record(outcome, self.opts, self.device)

def indent(text: str, prefix: str = "    ") -> str:
    """``text`` with every line indented (a multi-line reason printed in full, under its cell)."""
    return "\n".join(prefix + ln for ln in (text or "").splitlines()) or prefix + "(no message)"
