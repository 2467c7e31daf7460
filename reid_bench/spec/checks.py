"""Cross-checks of a schema-valid spec: columns, rows (published numbers, methods, recipes)
and the paper's claims. Each returns ``(key path, message)`` errors for ``format_errors``."""

from __future__ import annotations

import difflib

from pydantic import ValidationError

from ..core.yamlio import KeyPath
from .messages import SMOKE_TAG, pydantic_errors
from .recipes import resolved_recipe
from .schema import METRIC_NAMES, ImprovementClaim, OrderingClaim, Row, Spec, claim_rows
from .traced import untrace


def check_columns(spec: Spec) -> list[tuple]:
    """Every column's protocol is registered and its metrics are known."""
    from ..eval import PROTOCOLS  # lazy: keeps `import reid_bench.spec` light

    errors: list[tuple] = []
    for ds_id, col in spec.datasets.items():
        if col.eval.protocol not in PROTOCOLS:
            errors.append((("datasets", ds_id, "eval", "protocol"),
                           f"unknown protocol {col.eval.protocol!r}; allowed: "
                           f"{', '.join(sorted(PROTOCOLS))}"))
        for m in col.metrics or []:
            if m.split("@")[0] not in METRIC_NAMES:
                errors.append((("datasets", ds_id, "metrics"), f"unknown metric {m!r}"))
    return errors


def check_rows(spec: Spec, check_methods: bool) -> tuple[list[tuple], set[str]]:
    """Row names are unique, rows name known columns and publish every metric of them, quoted
    rows cite a source, runnable rows have a method whose params and recipe validate (an
    unregistered method is an error only with ``check_methods``). Returns (errors, row names)."""
    errors: list[tuple] = []
    names: set[str] = set()
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
            if row.same_as is not None and row.shared is None:
                continue  # read as a same_as target: its own load resolves and checks it
            errors.append((rp, "a runnable row needs 'method'"))
            continue
        _, _, errs = untrace(row.recipe, rp + ("recipe",))
        errors += errs
        errors += check_method(spec, row, rp, check_methods)
    return errors, names


def check_claims(spec: Spec, names: set[str]) -> list[tuple]:
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


def check_method(spec: Spec, row: Row, rp: KeyPath, strict: bool) -> list[tuple]:
    """The row's params and resolved recipe (plain and --smoke) validate against its method."""
    from ..core.registry import METHODS

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
        errs += pydantic_errors(exc, rp + ("params",), method.Params, row.params)
    for smoke in (False, True):
        values, _ = resolved_recipe(spec, row, smoke=smoke)
        try:
            method.Recipe.model_validate(values)
        except ValidationError as exc:
            tag = SMOKE_TAG if smoke else ""
            for kp, msg in pydantic_errors(exc, ("recipe",), method.Recipe, values):
                errs.append((_recipe_key(spec, row, rp, kp, smoke), msg + tag))
    return errs


def _recipe_key(spec: Spec, row: Row, rp: KeyPath, kp: KeyPath, smoke: bool) -> KeyPath:
    """Where the value at recipe key path ``kp`` (``("recipe", ...)``) was written: the row's
    or the table's ``smoke.recipe`` when a --smoke override set it, else the row's recipe when
    it has that key, else the table's."""
    sub = kp[1:]
    if smoke and _holds(row.smoke.recipe, sub):
        return rp + ("smoke", "recipe") + sub
    if smoke and _holds(spec.smoke.recipe, sub):
        return ("smoke", "recipe") + sub
    return rp + sub if sub[:1] and sub[0] in row.recipe else kp


def _holds(tree: dict, path: KeyPath) -> bool:
    for k in path:
        if not isinstance(tree, dict) or k not in tree:
            return False
        tree = tree[k]
    return bool(path)
