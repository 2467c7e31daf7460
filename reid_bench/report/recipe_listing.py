"""The recipe a page lists: the table's values, each row's own, the values left to the methods'
defaults (``assumed: default``) and, for the shrunk tiers, the smoke recipe; and the resolved
values ``--set`` overrides replace (``baseline``), which a variant's description names.
"""

from __future__ import annotations

from typing import Any

from ..spec import Spec, untrace
from .view import RecipeEntry


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): tree}


def recipe_entries(spec: Spec, smoke: bool) -> list[RecipeEntry]:
    """The table recipe, each row's overrides, and (for smoke runs) the smoke overrides."""
    out: list[RecipeEntry] = []
    values, prov, _ = untrace(spec.recipe)
    for key, val in flatten(values).items():
        p = prov.get(key, {})
        out.append(RecipeEntry("table", key, val, p.get("source"), p.get("assumed")))
    for r in spec.rows:
        if not r.runnable or not r.recipe:
            continue
        values, prov, _ = untrace(r.recipe)
        for key, val in flatten(values).items():
            p = prov.get(key, {})
            out.append(RecipeEntry(r.name, key, val, p.get("source"), p.get("assumed")))
    out += _defaults(spec)
    if smoke:
        for key, val in flatten(spec.smoke.recipe).items():
            out.append(RecipeEntry("smoke", key, val, None, None))
    return out


def _defaults(spec: Spec) -> list[RecipeEntry]:
    """The values the spec leaves to its methods' Recipe defaults (``spec.defaults``), each
    ``assumed: default``: once for the table when every runnable row runs the same one."""
    from ..spec.defaults import DEFAULT_REASON, untraced_leaves

    runnable = {r.name for r in spec.rows if r.runnable and r.method}
    rows: dict[tuple, list[str]] = {}
    values: dict[tuple, Any] = {}
    for u in untraced_leaves(spec):
        rows.setdefault((u.key, repr(u.value)), []).append(u.row)
        values[(u.key, repr(u.value))] = u.value
    out: list[RecipeEntry] = []
    for (key, rv), names in rows.items():
        scopes = ["table"] if set(names) == runnable else names
        out += [RecipeEntry(s, key, values[(key, rv)], None, DEFAULT_REASON) for s in scopes]
    return out


def baseline(spec: Spec, smoke: bool) -> dict[str, Any]:
    """Dotted key → value of the spec's resolved recipe (its first runnable row), the values
    --set overrides replace."""
    from ..spec import resolved_recipe

    row = next((r for r in spec.rows if r.runnable), None)
    return {} if row is None else flatten(resolved_recipe(spec, row, smoke=smoke)[0])
