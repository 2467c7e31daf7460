"""``same_as``: a row whose published numbers are another table's row (LEDF Table 3 "ResNet-50
(O)" prints Verif-Identif's ResNet-50 baseline). ``resolve_same_as`` checks the declaration and
makes a runnable such row run the referenced row's method, params, recipe and evaluation, so
both tables share one trained model (the trained-model cache is keyed by the training, not by
the table). Quoted rows (``runnable: false``) only declare it; the numbers are checked either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .recipes import deep_merge
from .schema import EvalSettings, Row, SharedRun, Spec
from .traced import untrace

#: ``<paper>/<table>:<row>``, e.g. ``verif_identif/table2:ResNet-50 (I)``.
REF_RE = re.compile(r"^(?P<paper>[a-z][a-z0-9_]*)/(?P<table>table[0-9]+):(?P<row>.+)$")
REF_FORM = "'<paper>/<table>:<row>', e.g. 'verif_identif/table2:ResNet-50 (I)'"


def row_ref(spec: Spec, row: Row) -> str:
    """The ``<paper>/<table>:<row>`` id of ``row`` of ``spec``."""
    return f"{spec.paper.id}/{spec.table.id}:{row.name}"


def row_columns(spec: Spec, row: Row) -> list[str]:
    """The dataset columns ``row`` publishes or runs."""
    return [c for c in (row.datasets if row.datasets is not None else spec.datasets)
            if c in spec.datasets]


def declared_refs(spec: Spec, row: Row) -> dict[str, str]:
    """``row.same_as`` per column ({} when none): a string covers every column of the row."""
    if row.same_as is None:
        return {}
    if isinstance(row.same_as, str):
        return {c: row.same_as for c in row_columns(spec, row)}
    return dict(row.same_as)


def shared_numbers(a: dict[str, float | None], b: dict[str, float | None]) -> dict[str, float]:
    """The metrics both published dicts print (non-null) with equal values, or {} when any
    printed in both differs."""
    common = [m for m in a if m in b and a[m] is not None and b[m] is not None]
    if any(abs(a[m] - b[m]) > 1e-9 for m in common):
        return {}
    return {m: a[m] for m in common}


def column_eval(spec: Spec, row: Row, col: str) -> EvalSettings:
    """How ``row``'s numbers in column ``col`` are scored: the column's evaluation with the row's
    overrides folded in (a same_as row: the referenced row's)."""
    if row.shared and col in row.shared.eval:
        return row.shared.eval[col]
    ev = spec.datasets[col].eval
    return ev.model_copy(update={"distance": row.eval.distance or ev.distance,
                                 "rerank": row.eval.rerank or ev.rerank,
                                 "options": {**ev.options, **row.eval.options}})


def resolve_same_as(spec: Spec, path: Path, load: Callable[[Path], Spec]
                    ) -> tuple[Spec, list[tuple]]:
    """``spec`` with every runnable ``same_as`` row taking the referenced row's method, params,
    recipe (its table's recipe merged in), evaluation and ``--smoke`` recipe, and the errors
    (``(key path, message)``) of every declaration: a malformed or unknown reference, a column
    the referenced row does not publish with equal numbers on the same dataset and options, a
    runnable row that also writes its own method/params/recipe/eval, references that disagree
    on the training. ``load`` reads a referenced spec (specs live in ``papers/<paper>/``)."""
    errors: list[tuple] = []
    rows = list(spec.rows)
    cache: dict[Path, Spec | None] = {}
    for i, row in enumerate(spec.rows):
        refs = declared_refs(spec, row)
        if not refs:
            continue
        kp = ("rows", i, "same_as")
        targets, bad = {}, False
        for col, ref in refs.items():
            where = kp + ((col,) if isinstance(row.same_as, dict) else ())
            if col not in row_columns(spec, row):
                errors.append((where, f"column {col!r} is not a column of this row; allowed: "
                                      f"{', '.join(row_columns(spec, row))}"))
                bad = True
                continue
            found = _target(spec, row, col, ref, path, load, cache)
            if isinstance(found, str):
                errors.append((where, found))
                bad = True
            else:
                targets[col] = found
        if bad or not row.runnable:
            continue
        msg = _shared_run(spec, row, targets)
        if isinstance(msg, str):
            errors.append((kp, msg))
        else:
            rows[i] = msg
    return spec.model_copy(update={"rows": rows}), errors


def _target(spec: Spec, row: Row, col: str, ref: str, path: Path, load, cache):
    """(referenced spec, row, column id) or an error message."""
    m = REF_RE.match(ref)
    if m is None:
        return f"same_as {ref!r} is not {REF_FORM}"
    if (m["paper"], m["table"]) == (spec.paper.id, spec.table.id):
        return f"same_as {ref!r} names this table; same_as links two tables"
    # Beside this spec's paper folder; for a copy of a spec kept elsewhere, the project's papers/.
    rel = Path(m["paper"]) / f"{m['table']}.yaml"
    file = next((f for f in (path.parent.parent / rel, Path("papers") / rel) if f.is_file()),
                path.parent.parent / rel)
    if file not in cache:
        try:
            cache[file] = load(file) if file.is_file() else None
        except Exception as exc:  # noqa: BLE001 - its own validate run reports it in full
            return f"same_as {ref!r}: {file} does not load: {str(exc).splitlines()[0]}"
    other = cache[file]
    if other is None:
        return f"same_as {ref!r}: no spec {file}"
    try:
        target = other.row(m["row"])
    except KeyError:
        return (f"same_as {ref!r}: {file} has no row {m['row']!r}; rows: "
                f"{', '.join(r.name for r in other.rows)}")
    mine, ds = row.published.get(col, {}), spec.datasets[col]
    for oc in row_columns(other, target):
        o = other.datasets[oc]
        if (o.name == ds.name and shared_numbers(mine, target.published.get(oc, {}))):
            if row.runnable and (o.options != ds.options or o.train != ds.train):
                return (f"same_as {ref!r}: its column {oc!r} loads {o.name} with options "
                        f"{o.options}, this column with {ds.options}: not the same training")
            return other, target, oc
    return (f"same_as {ref!r}: no column of that row publishes the same {ds.name} numbers as "
            f"this row's {col!r} ({mine})")


def _shared_run(spec: Spec, row: Row, targets: dict[str, tuple]) -> Row | str:
    """``row`` running its targets' training (and, when it writes no method of its own, their
    evaluation), or an error message. A row that writes its own method, params and recipe
    must train exactly as its targets (the trained-model cache then shares the training)."""
    plans, evals = {}, {}
    for col, (other, target, oc) in targets.items():
        if not target.runnable:
            return (f"same_as {row_ref(other, target)} is a quoted row (runnable: false): "
                    "nothing to share; make this row runnable: false too")
        if target.same_as is not None and not target.method:
            return (f"same_as {row_ref(other, target)} is itself a same_as row; name the row "
                    f"it refers to")
        plans[col] = (target.method, target.params, deep_merge(other.recipe, target.recipe))
        evals[col] = column_eval(other, target, oc)
    first = next(iter(targets))
    for col, p in plans.items():
        if _values(p) != _values(plans[first]):
            return (f"column {col!r}'s same_as row trains differently from column {first!r}'s "
                    f"(method, params or recipe differ): split the row or drop one reference")
    other, target, _ = targets[first]
    refs = {c: row_ref(t[0], t[1]) for c, t in targets.items()}
    if row.method:
        mine = (row.method, row.params, deep_merge(spec.recipe, row.recipe))
        if _values(mine) != _values(plans[first]):
            return (f"this row's method, params or recipe differ from {refs[first]}'s, whose "
                    "numbers it shares: remove them to run that row's training")
        return row.model_copy(update={"shared": SharedRun(refs=refs)})
    own = ["eval"] if row.eval.model_dump(exclude_defaults=True) else []
    own += ["smoke"] if row.smoke.model_dump(exclude_defaults=True) else []
    own += [k for k in ("recipe", "params") if getattr(row, k)]
    if own:
        return (f"a same_as row without a method runs the referenced row's method, params, "
                f"recipe, evaluation and smoke settings; remove its own {', '.join(own)}")
    method, params, recipe = plans[first]
    shared = SharedRun(refs=refs, eval=evals, takes_training=True,
                       smoke_recipe=deep_merge(other.smoke.recipe, target.smoke.recipe))
    return row.model_copy(update={"method": method, "params": params, "recipe": recipe,
                                  "shared": shared})


def _values(plan: tuple) -> tuple:
    """(method, params with the method's defaults, recipe values) without provenance."""
    from ..core.registry import METHODS  # lazy: the registry imports every method module

    method, params, recipe = plan
    params = untrace(params, require=False)[0]
    if method in METHODS:
        try:
            params = METHODS.get(method).Params.model_validate(params).model_dump()
        except ValueError:  # reported by the row's own method check
            pass
    return method, params, untrace(recipe)[0]
