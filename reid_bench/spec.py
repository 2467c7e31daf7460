"""Paper-table specs: YAML → validated, typed ``Spec`` objects.

One YAML file per paper table (``papers/<paper>/tableN.yaml``). Validation happens once, here;
every error names the file, the line, the key path and what is allowed. Unknown keys are errors
(with the nearest valid key). Recipe values must be traceable: each leaf of a ``recipe:`` block is
``{value: X, source: "Sec. III-F"}`` or ``{value: X, assumed: "why"}``; an assumed value may add
``replaces:`` (the paper text it stands in for) and ``alternatives:`` (other readings that
``reid-bench run --variant KEY=VALUE`` can try, see reid_bench.variants). ``params``, ``eval``
and row ``eval`` values may be traced the same way (plain values are allowed there).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import SpecError
from .hashing import stable_hash  # noqa: F401  (re-exported: spec.stable_hash)
from .metrics import METRICS
from .yamlio import KeyPath, line_of, load_yaml_with_lines

METRIC_NAMES = tuple(METRICS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaperInfo(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    authors: list[str]
    venue: str
    year: int = Field(ge=1990, le=2100)
    url: str | None = None


class TableInfo(_Strict):
    id: str = Field(pattern=r"^table[0-9]+$")
    caption: str


class RerankSettings(_Strict):
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017) parameters."""

    k1: int = Field(20, gt=0)
    k2: int = Field(6, gt=0)
    lambda_value: float = Field(0.3, ge=0, le=1)


class EvalSettings(_Strict):
    """How a column is scored: the protocol, AP definition, distance, optional re-ranking."""

    protocol: str = "market"
    ap: Literal["standard", "market_matlab"] = "standard"
    distance: Literal["euclidean", "sqeuclidean", "cosine"] = "euclidean"
    rerank: RerankSettings | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class TrainSource(_Strict):
    """A dataset to train on that is not the one evaluated (Verif-Identif Table VII trains on a
    landmarks image folder and tests on Oxford5k)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class DatasetColumn(_Strict):
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


class EvalOverrides(_Strict):
    """Row-level evaluation overrides (e.g. the re-ranking rows)."""

    distance: Literal["euclidean", "sqeuclidean", "cosine"] | None = None
    rerank: RerankSettings | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class SmokeSettings(_Strict):
    """What ``--smoke`` changes: recipe overrides (plain values: they are ours, not the paper's)
    and the synthetic stand-in dataset's options."""

    recipe: dict[str, Any] = Field(default_factory=dict)
    dataset_options: dict[str, Any] = Field(default_factory=dict)


class Row(_Strict):
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

    @field_validator("published")
    @classmethod
    def _percent(cls, v: dict[str, dict[str, float | None]]) -> dict:
        for ds, metrics in v.items():
            for m, x in metrics.items():
                if x is not None and not 0 <= x <= 100:
                    raise ValueError(f"published[{ds}][{m}] = {x} is not a percentage in [0, 100]")
        return v


class _ClaimBase(_Strict):
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


class Spec(_Strict):
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


# --------------------------------------------------------------------------------------------
# Traced recipe values


TRACED_KEYS = ("value", "source", "assumed", "alternatives", "replaces")


def split_traced(tree: Any, path: KeyPath = (), *,
                 require: bool = True) -> tuple[Any, dict[str, dict], list[tuple]]:
    """Strip provenance from a recipe tree.

    Returns ``(values, provenance, errors)``: ``values`` is the same tree with each traced leaf
    replaced by its value; ``provenance`` maps the dotted key to ``{"source": ...}`` or
    ``{"assumed": ..., "alternatives": [...], "replaces": "paper text"}`` (the last two only
    when given); ``errors`` lists ``(key_path, message)`` for malformed traced values and, with
    ``require``, for untraced leaves (``params`` and ``eval`` may mix plain and traced values).
    """
    prov: dict[str, dict] = {}
    errors: list[tuple] = []

    def walk(node: Any, p: KeyPath) -> Any:
        if isinstance(node, dict) and "value" in node:
            extra = set(node) - set(TRACED_KEYS)
            has = [k for k in ("source", "assumed") if node.get(k)]
            if extra:
                errors.append((p, f"unknown key(s) {sorted(extra)} in a traced value; allowed: "
                                  f"{', '.join(TRACED_KEYS)}"))
            if len(has) != 1:
                errors.append((p, "a traced value needs exactly one of 'source' (the paper "
                                  "section) or 'assumed' (why we chose it)"))
            else:
                entry = {has[0]: node[has[0]]}
                errors.extend(_check_alternatives(node, p))
                for k in ("alternatives", "replaces"):
                    if node.get(k) is not None:
                        entry[k] = node[k]
                prov[".".join(map(str, p))] = entry
            return node["value"]
        if isinstance(node, dict) and (require or p == path):
            return {k: walk(v, p + (k,)) for k, v in node.items()}
        if require:
            errors.append((p, "recipe values must be traced: write {value: X, source: \"Sec. N\"} "
                              "or {value: X, assumed: \"reason\"}"))
        return node

    return walk(tree, path), prov, errors


def _check_alternatives(node: dict, p: KeyPath) -> list[tuple]:
    """``alternatives`` (other readings a variant run may try) and ``replaces`` (the paper text
    the assumption stands in for) belong to assumed values only."""
    errs: list[tuple] = []
    alts = node.get("alternatives")
    if alts is not None:
        if not node.get("assumed"):
            errs.append((p + ("alternatives",), "only an 'assumed' value may list alternatives "
                                                "(a paper-stated value has none)"))
        if not isinstance(alts, list) or not alts:
            errs.append((p + ("alternatives",), "alternatives must be a non-empty list of "
                                                "values, e.g. alternatives: [ratio]"))
        elif node["value"] in alts:
            errs.append((p + ("alternatives",), f"the assumed value {node['value']!r} is listed "
                                                "among its own alternatives"))
    if node.get("replaces") is not None and not node.get("assumed"):
        errs.append((p + ("replaces",), "'replaces' (the paper text an assumption stands in "
                                        "for) belongs to an assumed value"))
    return errs


def strip_traced_settings(data: dict) -> tuple[list[dict], list[tuple]]:
    """Replace traced values in ``datasets.<col>.eval``, ``datasets.<col>.options`` (loader
    options), ``rows[i].params`` and ``rows[i].eval`` of raw spec ``data`` (in place) by their plain values.

    These blocks take plain values (paper-stated by the spec's comments) or traced ones like
    the recipe (``{value: standard, assumed: "...", alternatives: [market_matlab]}``). Returns
    ``(entries, errors)``: one entry per traced value, ``{"scope": "column"|"row", "owner":
    column id or row name, "key": "eval.ap" | "params.reduction_mode" | "eval.options.x",
    "value": ..., **provenance}``."""
    entries: list[dict] = []
    errors: list[tuple] = []

    def strip(block: Any, kp: KeyPath, scope: str, owner: str, prefix: str) -> None:
        if not isinstance(block, dict):
            return
        for name in list(block):
            sub = block[name]
            if name == "options" and prefix == "eval" and isinstance(sub, dict):
                strip(sub, kp + (name,), scope, owner, "eval.options")
                continue
            if not (isinstance(sub, dict) and "value" in sub):
                continue
            value, prov, errs = split_traced(sub, kp + (name,), require=False)
            errors.extend(errs)
            block[name] = value
            p = prov.get(".".join(map(str, kp + (name,))))
            if p:
                entries.append({"scope": scope, "owner": owner, "key": f"{prefix}.{name}",
                                "value": value, **p})

    for ds, col in (data.get("datasets") or {}).items():
        if isinstance(col, dict):
            strip(col.get("eval"), ("datasets", ds, "eval"), "column", str(ds), "eval")
            strip(col.get("options"), ("datasets", ds, "options"), "column", str(ds), "options")
    for i, row in enumerate(data.get("rows") or []):
        if isinstance(row, dict):
            name = str(row.get("name", i))
            strip(row.get("params"), ("rows", i, "params"), "row", name, "params")
            strip(row.get("eval"), ("rows", i, "eval"), "row", name, "eval")
    return entries, errors


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base`` (nested dicts merged, other values replaced)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and "value" not in v:
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out




# --------------------------------------------------------------------------------------------
# Loading


_SMOKE_TAG = " (with --smoke overrides)"


def _format(path: Path, lines: dict, errors: list[tuple]) -> str:
    # A table-level mistake is found once per row and again with the smoke overrides: say it
    # once (the smoke-tagged copy only when the plain recipe is fine at that key).
    plain = {(tuple(kp), msg) for kp, msg in errors}
    out = []
    for kp, msg in errors:
        if msg.endswith(_SMOKE_TAG) and (tuple(kp), msg[: -len(_SMOKE_TAG)]) in plain:
            continue
        ln = line_of(lines, kp)
        loc = f"{path}:{ln}" if ln else str(path)
        key = ".".join(str(k) for k in kp) or "<top level>"
        line = f"{loc}: {key}: {msg}"
        if line not in out:
            out.append(line)
    return "\n".join(out)


def _model_fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _pydantic_errors(exc: ValidationError, prefix: KeyPath, model: type[BaseModel],
                     data: Any) -> list[tuple]:
    errs = []
    for e in exc.errors():
        loc = prefix + tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            # Find the model that owns the parent to suggest the nearest valid key.
            valid = _valid_keys_at(model, tuple(e["loc"])[:-1])
            near = difflib.get_close_matches(str(e["loc"][-1]), valid, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            errs.append((loc, f"unknown key.{hint} Allowed keys: {', '.join(valid)}"))
        elif e["type"] == "missing":
            errs.append((loc, "required key is missing"))
        else:
            errs.append((loc, f"{e['msg']} (got {e.get('input')!r})"))
    return errs


def _valid_keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) pydantic model at ``loc`` below ``model``."""
    import typing

    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)):
            return []
        f = cur.model_fields.get(part)
        if f is None:
            return []
        ann = f.annotation
        # unwrap Optional / list / dict
        for _ in range(3):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                break
            if args:
                ann = args[-1]
        cur = ann
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return _model_fields(cur)
    return []


def load_spec(path: str | Path, *, check_methods: bool = False) -> Spec:
    """Read and validate one spec file.

    Checks the schema, that every row publishes a number (or explicit ``null`` for a dash) for
    every metric of every column it belongs to, that recipe values are traced and that each
    runnable row's method params and resolved recipe validate against its method. With
    ``check_methods`` an unregistered method is an error (``validate``); without, the runner
    records such rows as failed cells. Raises SpecError listing every problem found.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found. Specs live in papers/<paper>/tableN.yaml.")
    data, lines = load_yaml_with_lines(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}:1: a spec must be a YAML mapping with keys "
                        f"{', '.join(k for k in Spec.model_fields if k not in ('path', 'spec_hash'))}")
    for forbidden in ("path", "spec_hash", "traced"):
        if forbidden in data:
            raise SpecError(_format(path, lines, [((forbidden,), "reserved key; remove it")]))
    traced, errors = strip_traced_settings(data)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format(path, lines, errors + _pydantic_errors(exc, (), Spec, data))
                        ) from None
    if spec.table.id != path.stem:
        errors.append((("table", "id"), f"table id {spec.table.id!r} does not match the file "
                                        f"name {path.name!r}"))
    if path.parent.name != spec.paper.id:
        errors.append((("paper", "id"), f"paper id {spec.paper.id!r} does not match the folder "
                                        f"{path.parent.name!r}"))
    _, _, errs = split_traced(spec.recipe, ("recipe",))
    errors += errs
    from .eval import PROTOCOLS  # lazy: keeps `import reid_bench.spec` light

    for ds_id, col in spec.datasets.items():
        if col.eval.protocol not in PROTOCOLS:
            errors.append((("datasets", ds_id, "eval", "protocol"),
                           f"unknown protocol {col.eval.protocol!r}; allowed: "
                           f"{', '.join(sorted(PROTOCOLS))}"))
        for m in col.metrics or []:
            if m.split("@")[0] not in METRIC_NAMES:
                errors.append((("datasets", ds_id, "metrics"), f"unknown metric {m!r}"))
    names = set()
    for i, row in enumerate(spec.rows):
        rp = ("rows", i)
        if row.name in names:
            errors.append((rp + ("name",), f"duplicate row name {row.name!r}"))
        names.add(row.name)
        cols = row.datasets if row.datasets is not None else list(spec.datasets)
        for ds in cols:
            if ds not in spec.datasets:
                errors.append((rp + ("datasets",), f"unknown dataset column {ds!r}; allowed: "
                                                   f"{', '.join(spec.datasets)}"))
        for ds in row.published:
            if ds not in spec.datasets:
                errors.append((rp + ("published", ds), f"unknown dataset column {ds!r}; "
                                                       f"allowed: {', '.join(spec.datasets)}"))
        for ds in cols:
            if ds not in spec.datasets:
                continue
            pub = row.published.get(ds)
            for m in spec.column_metrics(ds):
                if pub is None or m not in pub:
                    errors.append((rp + ("published", ds), f"missing published number for "
                                   f"metric {m!r} (write null where the paper prints '-')"))
        if not row.runnable:
            if not row.source:
                errors.append((rp, "a row with runnable: false needs 'source' (where the "
                                   "number comes from)"))
            continue
        if not row.method:
            errors.append((rp, "a runnable row needs 'method'"))
            continue
        _, _, errs = split_traced(row.recipe, rp + ("recipe",))
        errors += errs
        errors += _check_method(spec, row, rp, check_methods)
    errors += _check_claims(spec, names)
    spec = spec.model_copy(update={"traced": traced})
    from .variants import check_alternatives  # lazy: variants imports this module

    errors += check_alternatives(spec)
    if errors:
        raise SpecError(_format(path, lines, errors))
    text = path.read_bytes()
    return spec.model_copy(update={"path": str(path),
                                   "spec_hash": hashlib.sha256(text).hexdigest()[:16]})


def _check_claims(spec: Spec, names: set[str]) -> list[tuple]:
    """Every row, dataset column and metric a claim names must exist in the spec."""
    errs: list[tuple] = []
    all_metrics = {m for ds in spec.datasets for m in spec.column_metrics(ds)}
    for i, claim in enumerate(spec.claims):
        cp = ("claims", i)
        for fld, name in claim_rows(claim):
            if name not in names:
                near = difflib.get_close_matches(name, sorted(names), n=1)
                hint = f" Did you mean {near[0]!r}?" if near else ""
                errs.append((cp + tuple(int(p) if p.isdigit() else p for p in fld.split(".")),
                             f"claim names unknown row {name!r}.{hint}"))
        for j, ds in enumerate(claim.datasets or []):
            if ds not in spec.datasets:
                errs.append((cp + ("datasets", j), f"unknown dataset column {ds!r}; allowed: "
                                                   f"{', '.join(spec.datasets)}"))
        for j, m in enumerate(claim.metrics or []):
            if m not in all_metrics:
                errs.append((cp + ("metrics", j), f"metric {m!r} is not a metric of this table; "
                                                  f"allowed: {', '.join(sorted(all_metrics))}"))
        if isinstance(claim, OrderingClaim) and len(set(claim.rows)) != len(claim.rows):
            errs.append((cp + ("rows",), "an ordering claim names a row twice"))
        if isinstance(claim, ImprovementClaim) and claim.row == claim.baseline:
            errs.append((cp + ("baseline",), "the baseline must differ from the row"))
    return errs


def _check_method(spec: Spec, row: Row, rp: KeyPath, strict: bool) -> list[tuple]:
    from .registry import METHODS

    if row.method not in METHODS:
        if strict:
            return [(rp + ("method",), f"unknown method {row.method!r}; registered: "
                                       f"{', '.join(METHODS.names())}")]
        return []
    method = METHODS.get(row.method)
    errs: list[tuple] = []
    try:
        method.Params.model_validate(row.params)
    except ValidationError as exc:
        errs += _pydantic_errors(exc, rp + ("params",), method.Params, row.params)
    for smoke in (False, True):
        values, _ = resolved_recipe(spec, row, smoke=smoke)
        try:
            method.Recipe.model_validate(values)
        except ValidationError as exc:
            tag = _SMOKE_TAG if smoke else ""
            for kp, msg in _pydantic_errors(exc, ("recipe",), method.Recipe, values):
                errs.append((rp + kp[1:] if kp[1:2] and kp[1] in row.recipe else kp, msg + tag))
    return errs


def resolved_recipe(spec: Spec, row: Row, *, smoke: bool) -> tuple[dict, dict[str, dict]]:
    """The recipe values for ``row`` (table recipe ⊕ row recipe, then ⊕ smoke overrides when
    ``smoke``) and the provenance of each value. Smoke overrides are ours, not the paper's;
    their provenance reads ``{"smoke": True}``."""
    tree = deep_merge(spec.recipe, row.recipe)
    values, prov, _ = split_traced(tree)
    if smoke:
        over = deep_merge(spec.smoke.recipe, row.smoke.recipe)
        values = deep_merge(values, over)
        for key in _leaf_keys(over):
            prov[key] = {"smoke": True}
    return values, prov


def _leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += _leaf_keys(v, key + ".")
        else:
            out.append(key)
    return out


def find_specs(paths: list[str] | None = None, root: Path = Path("papers")) -> list[Path]:
    """Spec files named by ``paths`` (files or folders), default every ``papers/*/table*.yaml``."""
    if not paths:
        return sorted(root.glob("*/table*.yaml"))
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.glob("**/table*.yaml")) if p.is_dir() else [p]
    return out
