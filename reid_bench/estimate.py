"""``run --dry-run``: how much training each planned cell is, and how long it would take.

Per cell: the training stages of the method's recipe (every ``OptimRecipe`` in the validated
recipe is one stage; its ``epochs``), the images one epoch processes (the training split's size
× the method's ``epoch_images`` factor, e.g. 2 for pair stages) and their product over stages.
The split size is the published statistic of the real dataset (what the runner's pre-training
check holds the data to), or the count on disk for ``--subset`` / datasets without published
statistics, or the generator's for the synthetic stand-in; "unknown" when none is derivable.

Given a throughput in training images per second per GPU (``--throughput``, or a measured one
from a shakedown row of the cell in the results CSV, column ``img_per_s``), the time is images /
throughput, in GPU-hours. Identical trainings (same method training key, recipe, training data
and seed, which the runner's artefact cache shares) are counted once. Evaluation, data loading
stalls and cached stage-1 networks shared between rows are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from . import results
from .errors import DatasetError
from .hashing import stable_hash
from .plan import cell_config, training_key
from .recipe import OptimRecipe
from .textable import text_table


@dataclass
class Stage:
    name: str
    epochs: int
    images_per_epoch: int | None


@dataclass
class CellEstimate:
    cell: Any
    stages: list[Stage] = field(default_factory=list)
    throughput: float | None = None  # training images per second per GPU
    throughput_source: str = ""  # "--throughput" | "shakedown" | ""
    shared_with: str | None = None  # id of the cell whose identical training this reuses
    # The row's declared same_as for this column (another table's row, one shared training);
    # counted here unless that table's cell came first in this plan (then shared_with).
    same_as: str | None = None
    problem: str = ""  # why nothing could be estimated
    size_note: str = ""  # how the training split size was found, when not published exactly

    @property
    def epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    @property
    def images_per_epoch(self) -> int | None:
        sizes = {s.images_per_epoch for s in self.stages}
        return sizes.pop() if len(sizes) == 1 else None

    @property
    def total_images(self) -> int | None:
        if not self.stages or any(s.images_per_epoch is None for s in self.stages):
            return None
        return sum(s.epochs * s.images_per_epoch for s in self.stages)

    @property
    def gpu_hours(self) -> float | None:
        if self.shared_with is not None:
            return 0.0
        if self.total_images is None or not self.throughput:
            return None
        return self.total_images / self.throughput / 3600


def optim_stages(recipe: BaseModel, prefix: str = "") -> Iterator[tuple[str, OptimRecipe]]:
    """(dotted field name, stage) of every ``OptimRecipe`` in ``recipe``, in field order."""
    for name in type(recipe).model_fields:
        value = getattr(recipe, name)
        if isinstance(value, OptimRecipe):
            yield prefix + name, value
        elif isinstance(value, BaseModel):
            yield from optim_stages(value, f"{prefix}{name}.")


def published_train_images(name: str, options: dict) -> tuple[int | None, str]:
    """(training images of registered dataset ``name`` by its published statistics, or None;
    a note when the number is an approximation): the dataset's ``train_images`` declaration
    (``reid_bench.data.base``)."""
    from .registry import DATASETS

    declared = DATASETS.info(name).get("train_images") if name in DATASETS else None
    return declared(options) if declared is not None else (None, "")


class Estimator:
    """Estimates for the cells of one spec, resolved as a run with ``opts`` (``RunOptions``)
    would run them."""

    def __init__(self, spec: Any, opts: Any, throughput: float | None = None,
                 seen: dict[str, str] | None = None):
        self.spec, self.opts = spec, opts
        self.throughput = throughput
        self.seen = {} if seen is None else seen  # training key → first cell id (across specs)
        self._sizes: dict[str, tuple[int | None, str]] = {}
        self._measured = _shakedown_throughputs(
            results.table_csv(opts.results_dir, spec.paper.id, spec.table.id))

    def train_images(self, name: str, options: dict) -> tuple[int | None, str]:
        """(training split size, note) of dataset ``name`` with loader ``options``."""
        key = stable_hash([name, options])
        if key not in self._sizes:
            n, note = (None, "") if self.opts.subset else published_train_images(
                name, options)
            if n is None:
                try:  # on disk: a subset, or a dataset without published statistics
                    n, note = len(self._load(name, options).train), "counted on disk"
                except (DatasetError, OSError, KeyError):
                    n, note = None, f"{name}: not on disk, no published training size"
            self._sizes[key] = (n, note)
        return self._sizes[key]

    def _load(self, name: str, options: dict) -> Any:
        """The dataset as the runner loads it, checked the same way (counts unless --subset)."""
        from .data.base import resolve_data_root
        from .data_check import load_verified

        return load_verified(name, resolve_data_root(self.opts.data_root), options,
                             subset=self.opts.subset)

    def cell(self, cell: Any) -> CellEstimate:
        from .registry import METHODS

        est = CellEstimate(cell)
        try:
            config = cell_config(self.spec, cell, self.opts)
            method = METHODS.get(cell.row.method)()
            params = method.Params.model_validate(cell.row.params)
            recipe = method.Recipe.model_validate(config["recipe"])
        except Exception as exc:  # noqa: BLE001 - shown in the table, the run would record it
            est.problem = str(exc).splitlines()[0]
            return est
        src = config["train_dataset"] or config["dataset"]
        n, est.size_note = self.train_images(src["name"], src["options"])
        for name, optim in optim_stages(recipe):
            factor = method.epoch_images(recipe, name)
            est.stages.append(Stage(name, optim.epochs,
                                    None if n is None else int(math.ceil(n * factor))))
        tkey = stable_hash(training_key(cell, config, method, params))
        refs = cell.row.shared.refs if cell.row.shared else {}
        est.same_as = refs.get(cell.dataset)
        if tkey in self.seen:
            est.shared_with = self.seen[tkey]
        else:
            self.seen[tkey] = f"{self.spec.table.id}:{cell.id}"
        measured = self._measured.get((cell.row.name, cell.dataset, cell.split, cell.seed,
                                       cell.variant))
        if measured:
            est.throughput, est.throughput_source = measured, "shakedown"
        elif self.throughput:
            est.throughput, est.throughput_source = self.throughput, "--throughput"
        return est


def _shakedown_throughputs(csv) -> dict[tuple, float]:
    """(row, dataset, split, seed, variant) → training images/s measured by a shakedown run, from
    the results CSV's ``img_per_s`` column when the shakedown tier records it."""
    try:
        df = results.read_results(csv)
    except Exception:  # noqa: BLE001 - an unreadable CSV only means no measurement
        return {}
    if df.empty or "img_per_s" not in df.columns:
        return {}
    out = {}
    for r in df[(df["tier"] == "shakedown") & (df["status"] == "ok")].to_dict("records"):
        try:
            v = float(r["img_per_s"])
        except (TypeError, ValueError):
            continue
        if v > 0:
            out[(r["row"], r["dataset"], results.split_of(r["split"]), int(r["seed"]),
                 r["variant"] or "")] = v
    return out


def _num(x: int | None) -> str:
    return "unknown" if x is None else f"{x:,}"


def _hours(h: float | None) -> str:
    return "–" if h is None else f"{h:,.2f}"


def format_estimates(title: str, ests: list[CellEstimate]) -> tuple[str, float | None, bool]:
    """A plain-text table of ``ests`` with a per-table total; returns (text, total GPU-hours or
    None when no cell has an estimate, whether some cell's time is unknown)."""
    header = ["row", "dataset", "split", "seed", "epochs", "img/epoch", "images", "GPU-h", "note"]
    body = []
    total, unknown = 0.0, False
    for e in ests:
        c = e.cell
        note = e.problem or (f"same training as {e.shared_with}" if e.shared_with else
                             (f"{e.throughput:,.0f} img/s ({e.throughput_source})"
                              if e.throughput else "no throughput: pass --throughput"))
        if e.same_as and not e.shared_with:
            note += (f"; same training as {e.same_as} (same_as: one training for both tables, "
                     "counted here)")
        if e.size_note:
            note += f"; {e.size_note}"
        if e.stages and len(e.stages) > 1 and e.images_per_epoch is None and e.total_images:
            note += "; stages: " + ", ".join(f"{s.name} {s.epochs}×{_num(s.images_per_epoch)}"
                                             for s in e.stages)
        h = e.gpu_hours
        if h is None:
            unknown = True
        else:
            total += h
        body.append([c.row.name, c.dataset, "" if c.split is None else str(c.split), str(c.seed),
                     str(e.epochs) if e.stages else "unknown",
                     _num(e.images_per_epoch) if e.stages else "unknown",
                     _num(e.total_images), _hours(h), note])
    lines = [title, *text_table(header, body, right={3, 4, 5, 6, 7}, indent="    ")]
    known = any(e.gpu_hours is not None for e in ests)
    lines.append(f"  table total: {_hours(total if known else None)} GPU-h"
                 + (" (some cells unknown)" if unknown and known else ""))
    return "\n".join(lines), (total if known else None), unknown
