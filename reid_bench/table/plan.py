"""Plan a table: its cells (row × dataset column × split × seed), each cell's key, and the
config that determines a cell's numbers (hashed into the results' ``config_hash``).

Pure: nothing here loads data, builds a model or sets torch state, so ``status``, the report's
stale check, the launchers and ``run --dry-run`` plan and hash cells without a ``Runner``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..core.errors import DatasetError, RegistryError
from ..core.hashing import stable_hash
from ..spec.recipes import resolved_recipe
from ..spec.schema import DatasetColumn, Row, Spec
from ..store import columns, results
from .overrides import apply_overrides, set_parts, variant_parts


def cell_label(row: str, dataset: str, split: int | None = None, seed: int | None = None) -> str:
    """How a cell is named to people: ``row × dataset`` (a row on a dataset column), plus
    `` (split s, seed n)`` when ``seed`` is given, e.g. ``IDE × cuhk (split 3, seed 0)``. The
    one "row × dataset" label of log lines, status, verify and compare."""
    label = f"{row} × {dataset}"
    if seed is None:
        return label
    return label + f" ({'' if split is None else f'split {split}, '}seed {seed})"


class CellKey(NamedTuple):
    """A cell's identity, in ``results.KEY`` order. A tuple: it equals ``results.row_key`` of
    the cell's CSV row; ``str(key)`` is the file-name-safe cell id (log lines, per-cell files);
    ``as_dict``/``from_dict`` are its JSON form in the launchers' job files."""

    row: str
    dataset: str  # column id in the spec
    split: int | None  # dataset split, for columns with ``splits``
    seed: int
    tier: str = "full"
    variant: str = ""  # "" = the canonical spec

    def __str__(self) -> str:
        return results.cell_id(self.row, self.dataset, self.seed, self.tier, self.split,
                               self.variant)

    @property
    def label(self) -> str:
        """``cell_label`` of this cell (tier and variant are not part of it)."""
        return cell_label(self.row, self.dataset, self.split, self.seed)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (the launchers' ``--cells`` and job files)."""
        return {"row": self.row, "dataset": self.dataset, "seed": self.seed,
                "tier": self.tier, "split": self.split, "variant": self.variant}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CellKey:
        """The key of an ``as_dict`` dict (as read back from JSON)."""
        return cls(d["row"], d["dataset"], None if d.get("split") is None else int(d["split"]),
                   int(d["seed"]), d["tier"], d.get("variant", ""))


@dataclass(frozen=True)
class Cell:
    """One unit of work: a spec row on one dataset column (and split) with one seed, in one
    tier (``results.TIERS``) and variant ("" = the canonical spec)."""

    row: Row
    dataset: str  # column id in the spec
    seed: int
    tier: str = "full"
    split: int | None = None  # dataset split, for columns with ``splits``
    variant: str = ""

    @property
    def smoke(self) -> bool:
        return self.tier == "smoke"

    @property
    def subset(self) -> bool:
        """A deliberate subset of the real dataset (``--subset``): spelled into the variant."""
        return "subset" in self.variant.split(";")

    @property
    def key(self) -> CellKey:
        return CellKey(self.row.name, self.dataset, self.split, self.seed, self.tier,
                       self.variant)

    @property
    def id(self) -> str:
        return str(self.key)

    @property
    def label(self) -> str:
        """``cell_label`` of this cell, e.g. ``IDE × market (seed 0)``."""
        return self.key.label


def plan(spec: Spec, *, rows: list[str] | None = None, seeds: int | None = None,
         smoke: bool = False, tier: str | None = None, variant: str = "") -> list[Cell]:
    """The cells of ``spec``: every runnable row (or those named in ``rows``) × its dataset
    columns × the column's splits (if it has ``splits``; not under ``smoke``) × seeds 0..n-1,
    in ``tier`` (default "smoke" with ``smoke``, else "full") and ``variant``.
    Unknown row names raise KeyError listing the valid ones."""
    tier = tier or ("smoke" if smoke else "full")
    smoke = tier in columns.SHRUNK_TIERS  # the shrunk recipes run one split
    if rows:
        valid = [r.name for r in spec.rows]
        unknown = [r for r in rows if r not in valid]
        if unknown:
            raise KeyError(f"unknown row(s) {unknown} in {spec.path}; rows: {valid}")
    n = seeds or spec.seeds
    cells = []
    for row in spec.rows:
        if not row.runnable or (rows and row.name not in rows):
            continue
        for ds in row.datasets if row.datasets is not None else spec.datasets:
            col = spec.datasets[ds]
            splits = range(col.splits) if col.splits and not smoke else [None]
            for split in splits:
                for seed in range(n):
                    cells.append(Cell(row, ds, seed, tier, split, variant))
    return cells


def cells_from_keys(spec: Spec, keys: Iterable[CellKey | Mapping[str, Any]]) -> list[Cell]:
    """The cells of ``spec`` named by ``keys`` (``CellKey``s or their ``as_dict`` dicts)."""
    rows = {r.name: r for r in spec.rows}
    out = []
    for k in keys:
        k = k if isinstance(k, CellKey) else CellKey.from_dict(k)
        out.append(Cell(rows[k.row], k.dataset, k.seed, k.tier, k.split, k.variant))
    return out


@dataclass(frozen=True)
class PlanOptions:
    """The run options that enter a cell's config (``runner.RunOptions`` has them too)."""

    smoke: bool = False  # every dataset becomes its synthetic stand-in
    overrides: Mapping[str, Any] = field(default_factory=dict)  # --set {dotted key: value}
    shakedown: Any = None  # reid_bench.table.shakedown.ShakedownOptions, or None
    weights: Mapping[str, str] = field(default_factory=dict)  # --weights {backbone: path}


def dataset_source(spec: Spec, col: DatasetColumn, opts: Any = PlanOptions()) -> tuple[str, dict]:
    """(registered dataset name, loader options) the column uses in a run with ``opts``."""
    return _source(spec, col, col.name, col.options, opts.smoke)


def train_source(spec: Spec, col: DatasetColumn,
                 opts: Any = PlanOptions()) -> tuple[str, dict] | None:
    """(name, options) of a separate training dataset, or None to train on the column's."""
    return None if col.train is None else _source(spec, col, col.train.name,
                                                  col.train.options, opts.smoke)


def _source(spec: Spec, col: DatasetColumn, name: str, options: dict,
            smoke: bool) -> tuple[str, dict]:
    # Under --smoke every dataset of the column becomes its synthetic stand-in.
    if not smoke:
        return name, dict(options)
    if col.smoke_standin is None:
        raise DatasetError(f"dataset {col.name!r} has no synthetic stand-in, so --smoke "
                           f"cannot run it; run without --smoke on the real dataset "
                           f"(`reid-bench data check {col.name}`)")
    return col.smoke_standin, dict(spec.smoke.dataset_options)


def cell_config(spec: Spec, cell: Cell, opts: Any = PlanOptions()) -> dict[str, Any]:
    """Everything that determines the cell's numbers in a run with ``opts`` (a ``PlanOptions``
    or ``RunOptions``). Raises DatasetError when the cell cannot run with them (no stand-in)."""
    row, col = cell.row, spec.datasets[cell.dataset]
    overrides = dict(opts.overrides or {})
    values, prov = resolved_recipe(spec, row, smoke=cell.tier in columns.SHRUNK_TIERS)
    if overrides:
        if not set(set_parts(overrides)) <= set(variant_parts(cell.variant)):
            # Overridden numbers must never land in the paper recipe's cells.
            raise ValueError(f"cell {cell.id}: --set overrides need a variant naming them "
                             f"(plan(..., variant=compose_variant(set_parts(...))))")
        values = apply_overrides(values, overrides)
        prov = {**prov, **{k: {"override": True} for k in overrides}}
    name, options = dataset_source(spec, col, opts)
    if cell.split is not None:
        options = {**options, "split": cell.split}
    train = train_source(spec, col, opts)
    shake = opts.shakedown
    if shake is not None:  # full recipe, synthetic stand-in at its input resolution
        from . import shakedown

        if col.smoke_standin is None:
            raise DatasetError(f"dataset {col.name!r} has no synthetic stand-in, so "
                               "--shakedown cannot run it")
        values = shakedown.adjust_recipe(row.method, values, shake)
        name, options = col.smoke_standin, shakedown.dataset_options(row.method, values)
        train = None
    # A same_as row is evaluated as the row it shares its numbers with (spec/same_as.py).
    ev = row.shared.eval.get(cell.dataset, col.eval) if row.shared else col.eval
    rerank = row.eval.rerank or ev.rerank
    # Only a run with overrides has the key, so canonical config hashes stay as they were.
    over = {"overrides": dict(sorted(overrides.items()))} if overrides else {}
    return {**over,
            "method": row.method, "params": row.params, "recipe": values,
            "dataset": {"name": name, "options": options},
            "train_dataset": {"name": train[0], "options": train[1]} if train else None,
            "eval": {"protocol": ev.protocol, "ap": ev.ap,
                     "distance": row.eval.distance or ev.distance,
                     "rerank": rerank.model_dump() if rerank else None,
                     "options": {**ev.options, **row.eval.options}},
            "seed": cell.seed, "smoke": cell.smoke, "tier": cell.tier,
            "variant": cell.variant, "_provenance": prov,
            **({"shakedown": shake.model_dump()} if shake is not None else {}),
            **weights_key(row, values, opts.weights),
            }


def config_hash(spec: Spec, cell: Cell, opts: Any = PlanOptions()) -> str:
    """The ``config_hash`` a run with ``opts`` records for ``cell``."""
    return stable_hash(cell_config(spec, cell, opts))


def weights_key(row: Row, recipe: dict, weights: Mapping[str, str] | None) -> dict[str, Any]:
    """``{"weights": {name: sha256}}`` when ``--weights`` replaces the ImageNet file of this
    row's backbone (other weights, other numbers), else {} (config hashes unchanged)."""
    if not weights:
        return {}
    from ..core.registry import METHODS
    from ..weights.store import sha256

    try:
        method = METHODS.get(row.method)()
    except RegistryError:  # recorded as not_run when the cell runs
        return {}
    name = method.backbone_name(method.Params.model_validate(row.params))
    pretrained = (recipe.get("backbone") or {}).get("pretrained", "imagenet")
    if name not in weights or pretrained != "imagenet":
        return {}
    return {"weights": {name: sha256(Path(weights[name]))}}


def training_key(cell: Cell, config: dict[str, Any], method: Any, params: Any) -> dict[str, Any]:
    """What of ``cell``'s ``config`` (``cell_config``) determines its trained model: the method,
    the params that change training (``method.training_key``), the recipe, the training data
    source and the seed. Cells with equal keys share one training; the runner adds what it
    learns at run time (dataset fingerprint, speed switches, weights)."""
    return {"method": cell.row.method, "params": method.training_key(params),
            "recipe": config["recipe"],
            "dataset": config["train_dataset"] or config["dataset"], "seed": cell.seed}
