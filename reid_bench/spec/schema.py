"""The spec schema: the pydantic models a paper-table YAML validates into (``Spec`` and its
parts). Loading, error messages and cross-checks are in ``reid_bench.spec.load``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ..core.metrics import METRICS
from ..core.strict import Strict

METRIC_NAMES = tuple(METRICS)


class PaperInfo(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    authors: list[str]
    venue: str
    year: int = Field(ge=1990, le=2100)
    url: str | None = None


class TableInfo(Strict):
    id: str = Field(pattern=r"^table[0-9]+$")
    caption: str


class RerankSettings(Strict):
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) parameters."""

    k1: int = Field(20, gt=0)
    k2: int = Field(6, gt=0)
    lambda_value: float = Field(0.3, ge=0, le=1)


class EvalSettings(Strict):
    """How a column is scored: the protocol, AP definition, distance, optional re-ranking."""

    protocol: str = "market"
    ap: Literal["standard", "market_matlab"] = "standard"
    distance: Literal["euclidean", "sqeuclidean", "cosine"] = "euclidean"
    rerank: RerankSettings | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class TrainSource(Strict):
    """A dataset to train on that is not the one evaluated (Verif-Identif Table VII trains on a
    landmarks image folder and tests on Oxford5k)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class DatasetColumn(Strict):
    """One dataset column group of the table (a dataset plus how it is evaluated)."""

    name: str
    # Train on another dataset than ``name`` (default: the training split of ``name``).
    train: TrainSource | None = None
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    eval: EvalSettings = EvalSettings()
    metrics: list[str] | None = None  # defaults to the table's metrics
    # Protocols defined over N random splits, each with its own training set (CUHK03 classic:
    # 20): one cell per split, the loader gets option ``split=i``, the report shows the mean
    # over splits (and seeds). Under --smoke the stand-in has no splits: one cell.
    splits: int | None = Field(None, ge=1)
    # What --smoke trains and evaluates on instead (None: no synthetic stand-in exists; the
    # cell fails fast with the data-check guidance).
    smoke_standin: str | None = "synthetic"


class EvalOverrides(Strict):
    """Row-level evaluation overrides (e.g. the re-ranking rows)."""

    distance: Literal["euclidean", "sqeuclidean", "cosine"] | None = None
    rerank: RerankSettings | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class SmokeSettings(Strict):
    """What ``--smoke`` changes: recipe overrides (plain values: they are ours, not the paper's)
    and the synthetic stand-in dataset's options."""

    recipe: dict[str, Any] = Field(default_factory=dict)
    dataset_options: dict[str, Any] = Field(default_factory=dict)


class SharedRun(Strict):
    """A ``same_as`` row as ``load_spec`` resolved it (never written in YAML): per column, the
    referenced row (``<paper>/<table>:<row>``) and that column's evaluation (the referenced row's
    overrides folded in), and the referenced table's ``--smoke`` recipe overrides."""

    refs: dict[str, str]
    # True: the row wrote no method and runs the referenced row's (recipe, eval, smoke below);
    # False: it wrote its own, checked to train the same.
    takes_training: bool = False
    eval: dict[str, EvalSettings] = Field(default_factory=dict)
    smoke_recipe: dict[str, Any] = Field(default_factory=dict)


class Row(Strict):
    """One row of the paper table."""

    name: str
    method: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    recipe: dict[str, Any] = Field(default_factory=dict)
    smoke: SmokeSettings = SmokeSettings()
    eval: EvalOverrides = EvalOverrides()
    published: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    runnable: bool = True
    source: str | None = None  # where a quoted row comes from (citation), or the section
    note: str | None = None
    datasets: list[str] | None = None  # run only on these columns (default: all)
    # The published numbers are another table's row: ``<paper>/<table>:<row>`` for every column
    # of this row, or {column: ref}. A runnable same_as row runs the referenced row's method,
    # params, recipe and evaluation (resolved by load_spec into ``shared``): one training, both
    # tables. ``validate`` refuses identical numbers across tables that do not declare it.
    same_as: str | dict[str, str] | None = None
    shared: SharedRun | None = None  # filled by load_spec from same_as; reserved in YAML

    @field_validator("published")
    @classmethod
    def _percent(cls, v: dict[str, dict[str, float | None]]) -> dict:
        for ds, metrics in v.items():
            for m, x in metrics.items():
                if x is not None and not 0 <= x <= 100:
                    raise ValueError(f"published[{ds}][{m}] = {x} is not a percentage in [0, 100]")
        return v


class _ClaimBase(Strict):
    """What every claim shares: the paper's own words, where they are, and which columns and
    metrics it covers (default: every metric of every dataset column)."""

    text: str | None = None
    source: str | None = None
    metrics: list[str] | None = None
    datasets: list[str] | None = None


class OrderingClaim(_ClaimBase):
    """``rows[0] > rows[1] > ...`` on each covered metric (e.g. I+V > I > V)."""

    kind: Literal["ordering"]
    rows: list[str] = Field(min_length=2)


class BestClaim(_ClaimBase):
    """``row`` scores highest among ``among`` (e.g. K = 3 is best in a K sweep)."""

    kind: Literal["best"]
    row: str
    among: list[str] = Field(min_length=1)


class ImprovementClaim(_ClaimBase):
    """``row`` beats ``baseline`` by at least ``margin`` percentage points."""

    kind: Literal["improvement"]
    row: str
    baseline: str
    margin: float = Field(0.0, ge=0)


Claim = Annotated[OrderingClaim | BestClaim | ImprovementClaim, Field(discriminator="kind")]


def claim_rows(claim: OrderingClaim | BestClaim | ImprovementClaim) -> list[tuple[str, str]]:
    """``(field, row name)`` for every row a claim names (for validation and the report)."""
    if isinstance(claim, OrderingClaim):
        return [(f"rows.{i}", r) for i, r in enumerate(claim.rows)]
    if isinstance(claim, BestClaim):
        return [("row", claim.row)] + [(f"among.{i}", r) for i, r in enumerate(claim.among)]
    return [("row", claim.row), ("baseline", claim.baseline)]


class Spec(Strict):
    """A validated paper-table spec."""

    paper: PaperInfo
    table: TableInfo
    metrics: list[str]
    datasets: dict[str, DatasetColumn]
    recipe: dict[str, Any] = Field(default_factory=dict)
    smoke: SmokeSettings = SmokeSettings()
    seeds: int = Field(1, ge=1)
    notes: list[str] = Field(default_factory=list)
    rows: list[Row]
    # Per-metric tolerance bands (absolute percentage points) for the report's verdicts; keys are
    # metric names ("mAP", "rank1", "rank1@100000"); unlisted metrics use the suite-wide
    # defaults in reid_bench/report/verdicts.py (DEFAULT_TOLERANCES).
    tolerances: dict[str, float] = Field(default_factory=dict)
    # The paper's conclusions as checkable claims over rows (see OrderingClaim, BestClaim,
    # ImprovementClaim); the report checks them on the reproduced numbers.
    claims: list[Claim] = Field(default_factory=list)

    # Filled by load_spec (not from YAML).
    path: str = ""
    spec_hash: str = ""
    # Provenance of the traced values of ``params`` and ``eval`` blocks (strip_traced_settings).
    traced: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: list[str]) -> list[str]:
        for m in v:
            base = m.split("@")[0]
            if base not in METRIC_NAMES:
                raise ValueError(f"unknown metric {m!r}; allowed: {', '.join(METRIC_NAMES)} "
                                 "(optionally suffixed '@<gallery size>')")
        return v

    @field_validator("tolerances")
    @classmethod
    def _tolerances(cls, v: dict[str, float]) -> dict[str, float]:
        for m, t in v.items():
            if m.split("@")[0] not in METRIC_NAMES:
                raise ValueError(f"tolerance for unknown metric {m!r}; allowed: "
                                 f"{', '.join(METRIC_NAMES)} (optionally suffixed '@<N>')")
            if not t > 0:
                raise ValueError(f"tolerance for {m!r} must be > 0 percentage points, got {t}")
        return v

    def column_metrics(self, ds: str) -> list[str]:
        return self.datasets[ds].metrics or self.metrics

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)
