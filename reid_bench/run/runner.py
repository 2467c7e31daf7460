"""Run a table's planned cells (reid_bench.table.plan): skip finished ones, run the rest.

Each cell: resolve the row's method/params/recipe, load the dataset (the synthetic stand-in with
``smoke``), train (or reuse a cached training with the same config), embed and evaluate with the
column's protocol, then upsert one CSV row with provenance. A failing cell is recorded with its
error and the run moves on; the caller gets a summary and exits non-zero if any cell did not
finish ok.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import history
from ..core import orphans
from ..core.console import progress
from ..core.errors import DatasetError, DiskFullError, DivergedError, RegistryError
from ..core.faults import fault_point
from ..core.hashing import stable_hash
from ..core.registry import METHODS
from ..data.base import ReidDataset, resolve_data_root
from ..data.check import BadFilesError, check_files, load_verified
from ..data.samplers import default_num_workers
from ..engine import trained as trained_prov
from ..engine.accel import resolve as resolve_accel
from ..engine.artifacts import ArtifactCache
from ..engine.method import Method
from ..engine.train import LoopSettings
from ..history import Monitor
from ..spec import Spec
from ..store import lease, results
from ..store.cellrow import record
from ..table import shakedown
from ..table.finished import DataFingerprints, cell_fingerprint, is_finished
from ..table.plan import Cell, cell_config, training_key
from ..weights.store import WeightsError
from .cellfit import FitSettings, fit_or_load

log = logging.getLogger(__name__)

# The ``details`` entries that describe a trained model (cellfit.fit_or_load fills them); a
# cell reusing the model from memory records the same.
_TRAINED_PROVENANCE = ("code_fingerprint", "trained_artifact", "trained", "trained_files",
                       "weights", "history", "history_file", "history_warnings")


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
    # --weights NAME=PATH: backbone name → weights file used instead of its ImageNet set.
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


def _seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


class Runner:
    """Runs the cells of one spec with ``RunOptions``; datasets are loaded once per run."""

    def __init__(self, spec: Spec, opts: RunOptions):
        self.spec, self.opts = spec, opts
        self.started = time.time()
        self.csv = results.table_csv(opts.results_dir, spec.paper.id, spec.table.id)
        self.cells_dir = results.cell_dir(opts.results_dir, spec.paper.id, spec.table.id)
        # Shakedown trainings (a few steps) live apart and are retrained on every run, so they
        # can never stand in for a real training.
        root = Path(opts.artifacts_dir or Path(opts.results_dir) / "_artifacts")
        self.cache = (ArtifactCache(root, refresh=opts.force) if opts.shakedown is None else
                      ArtifactCache(root / "_shakedown", refresh=True))
        self._shakedown_stages: dict[str, Any] = {}
        self.device = torch.device(opts.device)
        self.data_root = resolve_data_root(opts.data_root)
        # The speed switches depend only on the options and the device: resolved once.
        self.accel = resolve_accel(opts.accel, self.device)
        self.num_workers = (default_num_workers(self.device) if opts.num_workers is None
                            else opts.num_workers)
        self._datasets: dict[str, ReidDataset] = {}
        # The latest trained model, by training hash, with its provenance ``details`` entries.
        self._trained: dict[str, tuple[torch.nn.Module, dict[str, Any]]] = {}
        self._mean_colour: dict[str, tuple[float, float, float]] = {}  # by dataset fingerprint
        self._files_checked: dict[str, str] = {}  # dataset fingerprint → problem ("" = ok)
        self.fingerprints = DataFingerprints(self.data_root, load=self.load)

    # ---------------------------------------------------------------- resolution
    def load(self, name: str, options: dict) -> ReidDataset:
        key = stable_hash([name, options])
        if key not in self._datasets:
            # Fail in seconds on a half-extracted or relabelled dataset, not after an epoch.
            # A deliberate --subset is checked for layout (the loader) and images, not counts.
            self._datasets[key] = load_verified(name, self.data_root, options,
                                                subset=self.opts.subset)
        return self._datasets[key]

    def data_fingerprint(self, config: dict[str, Any]) -> str | None:
        """``finished.cell_fingerprint`` of the data a cell with ``config`` runs on, or None
        when it does not load (the cell then runs, and records why it could not)."""
        return self.fingerprints.of_config(config)

    def check_files(self, ds: ReidDataset, name: str, options: dict) -> None:
        """``data.check.check_files`` once per dataset (by fingerprint); a bad dataset raises
        ``BadFilesError`` again for every cell that uses it."""
        if ds.fingerprint not in self._files_checked:
            try:
                check_files(ds, name, options)
                self._files_checked[ds.fingerprint] = ""
            except BadFilesError as exc:
                self._files_checked[ds.fingerprint] = str(exc)
        if self._files_checked[ds.fingerprint]:
            raise BadFilesError(self._files_checked[ds.fingerprint])

    def cell_config(self, cell: Cell) -> dict[str, Any]:
        """``plan.cell_config`` of ``cell`` with this run's options."""
        return cell_config(self.spec, cell, self.opts)

    # ---------------------------------------------------------------- running
    def run(self, cells: list[Cell]) -> RunSummary:
        summary = RunSummary()
        results.refuse_id_clashes(self.csv, [c.key for c in cells])
        # Temporary files and build folders of killed runs (never a live runner's).
        orphans.sweep(self.opts.results_dir, self.started, busy=lease.guard_held)
        rows = {} if self.opts.force else results.cell_rows(self.csv)
        bar = progress(cells, desc="cells", unit="cell", enabled=not self.opts.quiet, leave=True)
        for i, cell in enumerate(bar, 1):
            split = "" if cell.split is None else f"split {cell.split}, "
            tag = f"[{i}/{len(cells)}] {cell.row.name} × {cell.dataset} ({split}seed {cell.seed})"
            try:
                config = self.cell_config(cell)
                chash = stable_hash(config)
            except DatasetError as exc:
                self._record(cell, {}, "", "not_run", str(exc), time.time(), None)
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
                status, error, result = self._run_cell(cell, config, chash)
            finally:
                held.release()
            if status == "ok":
                summary.done.append(cell.id)
                m = result["metrics"]
                log.info("%s: ok — %s", tag, ", ".join(f"{k} {v:.2f}" for k, v in m.items()))
            else:
                summary.failed.append((cell.id, status, error))
                log.info("%s: %s —\n%s", tag, status, indent(error))
        return summary

    def _run_cell(self, cell: Cell, config: dict, chash: str) -> tuple[str, str, dict | None]:
        started = time.time()
        details: dict[str, Any] = {"config": config}
        status, msg, result = "ok", "", None
        try:
            result = self._train_and_evaluate(cell, config, details)
        except BadFilesError as exc:  # the data is broken, not missing: the cell failed
            return self._record(cell, config, chash, "failed", str(exc), started, None, details)
        except DivergedError as exc:
            status, msg = "diverged", f"{exc} (step {exc.step})"
        except (RegistryError, DatasetError, WeightsError) as exc:
            status, msg = "not_run", str(exc)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # one failing cell never stops the table
            details["traceback"] = traceback.format_exc()
            status, msg = "failed", f"{type(exc).__name__}: {exc}"
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                msg += (" — the GPU ran out of memory: lower the batch size in the spec's recipe "
                        "or evaluate on --device cpu")
            elif isinstance(exc, DiskFullError):
                msg = str(exc)
        if status != "ok":
            # Recorded outside the except block: the failure's traceback, whose frames may
            # hold a failed write's file (and its disk space), is gone by now. A record that
            # cannot be written either (DiskFullError) stops the run; the CSV is untouched.
            return self._record(cell, config, chash, status, msg, started, None, details)
        out = self._record(cell, config, chash, "ok", "", started, result, details)
        shutil.rmtree(results.cell_file(self.cells_dir, f".work-{cell.id}"), ignore_errors=True)
        return out

    def _train_and_evaluate(self, cell: Cell, config: dict, details: dict) -> dict:
        method: Method = METHODS.get(cell.row.method)()
        params = method.Params.model_validate(cell.row.params)
        recipe = method.Recipe.model_validate(config["recipe"])
        ds = self.load(config["dataset"]["name"], config["dataset"]["options"])
        tsrc = config["train_dataset"]
        train_ds = self.load(tsrc["name"], tsrc["options"]) if tsrc else ds
        details["dataset_fingerprint"] = cell_fingerprint(
            ds.fingerprint, train_ds.fingerprint if tsrc else None)
        # Every listed file, cheaply, before the first step: a truncated JPEG fails the cell in
        # seconds (naming the file), not after epochs of training.
        self.check_files(ds, config["dataset"]["name"], config["dataset"]["options"])
        if tsrc:
            self.check_files(train_ds, tsrc["name"], tsrc["options"])
        details["synthetic"] = ds.synthetic or train_ds.synthetic
        _seed_everything(cell.seed, self.opts.deterministic)
        train_key = {**training_key(cell, config, method, params),
                     "fingerprint": train_ds.fingerprint,
                     # precision/speed switches, world size, global batch (reid_bench.engine.trained)
                     **trained_prov.key_extras(self.accel, config["recipe"],
                                               self.opts.shakedown),
                     **({"weights": config["weights"]} if "weights" in config else {})}
        thash = stable_hash(train_key)
        details["train_hash"] = thash
        details["accel"] = self.accel.as_dict()
        extras = self._extras(recipe, train_ds, method.backbone_name(params))
        shakedown.begin_cell(self.device)

        def evaluate(model: torch.nn.Module) -> Any:
            from ..engine.embed import make_embedder
            from ..eval import evaluate_cell

            embed = make_embedder(method.features(model, params), model,
                                  method.test_input(recipe), device=self.device,
                                  num_workers=self.num_workers,
                                  mean_image=extras.get("mean_image"), accel=self.accel,
                                  weights=extras["weights"])
            ev = config["eval"]
            return evaluate_cell(ev["protocol"], ds, embed, distance=ev["distance"], ap=ev["ap"],
                                 rerank=ev["rerank"], seed=cell.seed, device=str(self.device),
                                 options=ev["options"])

        self._monitor = (monitoring(method, params, recipe, train_ds, evaluate,
                                    self.opts.eval_every)
                         if self.opts.eval_every and self.opts.shakedown is None else None)
        model, prov = self._trained.get(thash, (None, {}))
        if model is None:
            from ..weights import use_overrides

            with shakedown.collect(self.opts.shakedown) as stages, use_overrides(self.opts.weights):
                try:
                    model = self._fit_or_load(method, params, recipe, train_ds, cell, train_key,
                                              extras, details)
                finally:
                    self._shakedown_stages = {thash: stages}
                    if stages is not None:  # a diverged cell keeps its losses too
                        details["shakedown"] = shakedown.summary(stages, self.device)
            # Keep only the latest (bounded memory), with what a reusing cell records of it.
            self._trained = {thash: (model, {k: details[k] for k in _TRAINED_PROVENANCE
                                             if k in details})}
        else:
            details.update(prov)
        fault_point("evaluate")
        res = evaluate(model)
        if self.opts.shakedown is not None:
            details["shakedown"] = shakedown.summary(self._shakedown_stages.get(thash), self.device)
        details["cmc"] = res.cmc
        details["eval_details"] = res.details
        return {"metrics": res.metrics, "num_queries": res.num_queries,
                "skipped_queries": res.num_skipped_queries}

    def _extras(self, recipe: Any, ds: ReidDataset, backbone: str) -> dict[str, Any]:
        # The backbone's weights own the input preprocessing (reid_bench.weights).
        extras: dict[str, Any] = {"weights": backbone}
        inp = getattr(recipe, "input", None)
        if inp is not None and inp.normalize == "mean_image":
            from ..data.transforms import compute_mean_colour

            # Decodes up to 2,000 training images: once per dataset, not once per cell.
            if ds.fingerprint not in self._mean_colour:
                self._mean_colour[ds.fingerprint] = compute_mean_colour(ds.train)
            extras["mean_image"] = self._mean_colour[ds.fingerprint]
        return extras

    def _fit_or_load(self, method: Method, params: Any, recipe: Any, ds: ReidDataset,
                     cell: Cell, train_key: dict, extras: dict, details: dict) -> torch.nn.Module:
        """``cellfit.fit_or_load`` with this run's settings (a hook: the DDP ranks of
        launch.worker wrap it)."""
        tb = self.opts.tensorboard
        run = FitSettings(self.device, self.accel, self.cache, self.num_workers,
                          self.opts.checkpoint_every, self.opts.deterministic,
                          LoopSettings(self.opts.checkpoint_minutes, progress=not self.opts.quiet),
                          every_steps=self.opts.log_every_steps,
                          monitor=getattr(self, "_monitor", None),
                          tensorboard=(None if tb is None else Path(tb) / self.spec.paper.id
                                       / self.spec.table.id / cell.id))
        model = fit_or_load(method, params, recipe, ds, seed=cell.seed,
                            work=results.cell_file(self.cells_dir, f".work-{cell.id}"),
                            train_key=train_key,
                            extras=extras, details=details, run=run)
        # Where the full history (with its rows every N steps) lies, inside the results folder.
        with contextlib.suppress(ValueError):
            details["history_file"] = (Path(details["trained_artifact"]) / history.FILE) \
                .relative_to(self.opts.results_dir).as_posix()
        return model

    def _record(self, cell: Cell, config: dict, chash: str, status: str, error: str,
                started: float, result: dict | None,
                details: dict | None = None) -> tuple[str, str, dict | None]:
        record(self.spec, cell, config, chash, status, error, started, result, details or {},
               self.opts, self.device)
        return status, error, result


def monitoring(method: Method, params: Any, recipe: Any, ds: ReidDataset,
               evaluate: Callable[[torch.nn.Module], Any], every: int) -> Monitor:
    """The ``--eval-every`` monitoring of a cell: ``evaluate`` (the cell's protocol) every
    ``every`` epochs on the stages that train the cell's final network (the class
    ``method.build`` returns; FMN's stage-1 GRN or LEDF's verification networks are not)."""
    final: list[type] = []

    def accepts(model: torch.nn.Module) -> bool:
        if not final:
            from ..weights import skip_pretrained

            with skip_pretrained():  # the architecture only, for its class
                final.append(type(method.build(params, recipe, ds.num_train_pids)))
        return type(model) is final[0]

    return Monitor(every, lambda model: dict(evaluate(model).metrics), accepts)


def indent(text: str, prefix: str = "    ") -> str:
    """``text`` with every line indented (a multi-line reason printed in full, under its cell)."""
    return "\n".join(prefix + ln for ln in (text or "").splitlines()) or prefix + "(no message)"
