"""``run --dry-run``: how much training each planned cell is, and how long it would take.

Per cell: the training stages of the method's recipe (every ``OptimRecipe`` in the validated
recipe is one stage; its ``epochs``), the images one epoch processes (the training split's size
× the method's ``epoch_images`` factor, e.g. 2 for pair stages) and their product over stages.
The split size is the published statistic of the real dataset (what the runner's pre-training
check holds the data to), or the count on disk for ``--subset`` / datasets without published
statistics, or the generator's for the synthetic stand-in; "unknown" when none is derivable.

The time is images / throughput, in GPU-hours. The throughput (training images per second per
GPU) is ``--throughput`` when given: an explicit number always wins. Without it, a shakedown row
of the cell in the results CSV (column ``img_per_s``) is used only when it was measured on the
device kind the estimate is for (``TARGET_KIND``: GPU-hours need a CUDA measurement; a CPU
shakedown, batch capped, says nothing about a GPU), and the note names it. Identical trainings
(same method training key, recipe, training data and seed, which the runner's artefact cache
shares) are counted once, and so is a stage a method caches apart and shares between rows
(``Method.shared_stages``: FMN's stage-1 GRN, LEDF's verification network). Cells and images
are totalled with or without a throughput. Evaluation and data loading stalls are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..core.errors import DatasetError
from ..core.hashing import stable_hash
from ..core.textable import text_table
from ..engine.recipe import OptimRecipe
from ..store import results
from .cell_estimate import CellEstimate, Stage
from .plan import cell_config, training_key
from .throughput import TARGET_KIND, shakedown_throughputs


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
    from ..core.registry import DATASETS

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
        self._measured = shakedown_throughputs(
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
        from ..data.base import resolve_data_root
        from ..data.check import load_verified

        return load_verified(name, resolve_data_root(self.opts.data_root), options,
                             subset=self.opts.subset)

    def cell(self, cell: Any) -> CellEstimate:
        from ..core.registry import METHODS

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
        if est.shared_with is None:
            self._share_stages(est, method, params, recipe, src)
        measured = self._measured.get((cell.row.name, cell.dataset, cell.split, cell.seed,
                                       cell.variant))
        if self.throughput:
            est.throughput, est.throughput_source = self.throughput, "--throughput"
        elif measured and measured.kind == TARGET_KIND:
            est.throughput, est.throughput_source = measured.rate, f"shakedown on {measured.name}"
        elif measured:
            est.throughput_note = (f"the {measured.rate:,.2f} img/s shakedown ran on "
                                   f"{measured.kind}, not a GPU: not used")
        return est

    def _share_stages(self, est: CellEstimate, method: Any, params: Any, recipe: Any,
                      src: dict) -> None:
        """Mark the stages ``method`` caches apart (``Method.shared_stages``) that an earlier
        cell already trains with the same key, training data and seed."""
        by_name = {s.name: s for s in est.stages}
        for name, key in method.shared_stages(params, recipe).items():
            if name not in by_name:
                continue
            skey = "stage:" + stable_hash([est.cell.row.method, name, key, src, est.cell.seed])
            if skey in self.seen:
                by_name[name].shared_with = self.seen[skey]
            else:
                self.seen[skey] = f"{self.spec.table.id}:{est.cell.id}"


def _num(x: int | None) -> str:
    return "unknown" if x is None else f"{x:,}"


def _hours(h: float | None) -> str:
    return "–" if h is None else f"{h:,.2f}"


@dataclass
class Totals:
    """What a set of estimates adds up to: cells, distinct trainings, training images (of the
    cells whose size is known) and GPU-hours (of those with a throughput)."""

    cells: int = 0
    trainings: int = 0
    images: int = 0
    images_unknown: int = 0  # cells whose image count is unknown
    gpu_hours: float = 0.0
    timed: int = 0  # trainings with a time estimate
    hours_unknown: int = 0  # trainings without one (cells with a problem are no training)

    def add(self, other: Totals) -> None:
        for f in ("cells", "trainings", "images", "images_unknown", "gpu_hours", "timed",
                  "hours_unknown"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def line(self, label: str) -> str:
        """``label``: N cell(s) (M trainings), X training images[, Y GPU-h]."""
        imgs = f"{self.images:,} training images" + (
            f" (+ {self.images_unknown} cell(s) of unknown size)" if self.images_unknown else "")
        if self.timed or not self.hours_unknown:
            hours = f"{self.gpu_hours:,.2f} GPU-h" + (
                f" ({self.hours_unknown} training(s) without an estimate)"
                if self.hours_unknown else "")
        else:
            hours = "no time estimate (pass --throughput IMG_PER_S)"
        return (f"{label}: {self.cells} cell(s), {self.trainings} training(s), {imgs}; "
                f"{hours}")


def totals(ests: list[CellEstimate]) -> Totals:
    """The ``Totals`` of ``ests``."""
    t = Totals(cells=len(ests))
    for e in ests:
        t.trainings += e.shared_with is None and not e.problem
        n = e.total_images
        if n is None:
            t.images_unknown += 1
        else:
            t.images += 0 if e.shared_with else n
        if e.shared_with is not None or e.problem:
            continue  # counted with the cell it shares / not a training
        h = e.gpu_hours
        if h is None:
            t.hours_unknown += 1
        else:
            t.gpu_hours += h
            t.timed += 1
    return t


def format_estimates(title: str, ests: list[CellEstimate]) -> tuple[str, Totals]:
    """A plain-text table of ``ests`` with the table's totals line; returns (text, totals)."""
    header = ["row", "dataset", "split", "seed", "epochs", "img/epoch", "images", "GPU-h", "note"]
    body = []
    for e in ests:
        c = e.cell
        note = e.problem or (f"same training as {e.shared_with}" if e.shared_with else
                             (f"{e.throughput:,.0f} img/s ({e.throughput_source})"
                              if e.throughput else "no throughput: pass --throughput"))
        if e.throughput_note:
            note += f"; {e.throughput_note}"
        if not e.shared_with:
            note += "".join(f"; {s.name} shared with {s.shared_with} (counted there)"
                            for s in e.stages if s.shared_with)
        if e.same_as and not e.shared_with:
            note += (f"; same training as {e.same_as} (same_as: one training for both tables, "
                     "counted here)")
        if e.size_note:
            note += f"; {e.size_note}"
        if e.stages and len(e.stages) > 1 and e.images_per_epoch is None and e.total_images:
            note += "; stages: " + ", ".join(f"{s.name} {s.epochs}×{_num(s.images_per_epoch)}"
                                             for s in e.stages)
        body.append([c.row.name, c.dataset, "" if c.split is None else str(c.split), str(c.seed),
                     str(e.epochs) if e.stages else "unknown",
                     _num(e.images_per_epoch) if e.stages else "unknown",
                     _num(e.total_images), _hours(e.gpu_hours), note])
    lines = [title, *text_table(header, body, right={3, 4, 5, 6, 7}, indent="    ")]
    t = totals(ests)
    lines.append(t.line("  table total"))
    return "\n".join(lines), t
