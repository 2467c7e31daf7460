"""Recipe values a spec leaves out: the method's Recipe defaults, which are our choice, not the
paper's. ``untraced_leaves`` lists them (the ledger shows each as ``assumed: default``);
``untraced_errors`` refuses them in a spec of the project's ``papers/`` folder, where every
value the method reads must say ``source:`` or ``assumed:``."""

from __future__ import annotations

from typing import Any, NamedTuple

from .recipes import resolved_recipe
from .schema import Spec

DEFAULT_REASON = "default"


class Untraced(NamedTuple):
    row_index: int
    row: str
    key: str  # dotted recipe key, e.g. "stage1.nesterov"
    value: Any  # the Recipe's default (JSON form)


def _pick(tree: Any, key: str) -> Any:
    for k in key.split("."):
        tree = tree[k]
    return tree


def _irrelevant(recipe: Any, key: str) -> bool:
    """Whether the other values of ``recipe`` make ``key`` irrelevant (a sub-model's
    ``unused_fields``, e.g. momentum under Adam)."""
    *parents, name = key.split(".")
    node = recipe
    for k in parents:
        node = getattr(node, k)
    unused = getattr(node, "unused_fields", None)
    return bool(unused and name in unused())


def untraced_leaves(spec: Spec) -> list[Untraced]:
    """Every recipe leaf a runnable row's method reads (``recipe.recipe_leaves`` of its Recipe,
    less ``Method.recipe_unused`` for the row's params) that neither the table nor the row
    recipe sets, unless the row's other values make it irrelevant (``OptimRecipe.unused_fields``).
    Rows whose method is not registered or whose recipe does not validate are
    skipped (other checks report them)."""
    from pydantic import ValidationError

    from ..core.registry import METHODS
    from ..engine.recipe import recipe_leaves

    out: list[Untraced] = []
    for i, row in enumerate(spec.rows):
        if not row.runnable or not row.method or row.method not in METHODS:
            continue
        method = METHODS.get(row.method)()
        values, prov = resolved_recipe(spec, row, smoke=False)
        try:
            params = method.Params.model_validate(row.params)
            recipe = method.Recipe.model_validate(values)
            dumped = recipe.model_dump(mode="json")
        except ValidationError:
            continue
        unused = method.recipe_unused(params)
        for key in recipe_leaves(method.Recipe):
            if is_unused(unused, key):
                continue
            if key not in prov and not _irrelevant(recipe, key):
                out.append(Untraced(i, row.name, key, _pick(dumped, key)))
    return out


def is_unused(unused: frozenset[str], key: str) -> bool:
    """Whether dotted recipe ``key`` is, or lies under, a key of ``unused``
    (``Method.recipe_unused``: a block such as ``verification`` covers its leaves)."""
    parts = key.split(".")
    return any(".".join(parts[:j]) in unused for j in range(1, len(parts) + 1))


def untraced_errors(spec: Spec) -> list[tuple]:
    """``(key path, message)``: the leaves ``untraced_leaves`` finds, once at ``recipe`` for
    keys every runnable row leaves out, else at the row."""
    missing = untraced_leaves(spec)
    if not missing:
        return []
    rows = {m.row_index for m in missing}
    runnable = {i for i, r in enumerate(spec.rows) if r.runnable and r.method}
    by_key: dict[str, set[int]] = {}
    for m in missing:
        by_key.setdefault(m.key, set()).add(m.row_index)
    table = sorted(k for k, idx in by_key.items() if idx == runnable)
    errs: list[tuple] = []
    hint = ('; trace each, e.g. {value: X, source: "Sec. N: ..."} or {value: X, assumed: '
            '"not stated in the paper; library default"}')
    if table:
        errs.append((("recipe",), "recipe values the method reads are neither 'source:' nor "
                                  f"'assumed:' (the Recipe's defaults): {', '.join(table)}"
                     + hint))
    for i in sorted(rows):
        own = sorted(m.key for m in missing if m.row_index == i and m.key not in table)
        if own:
            errs.append((("rows", i), f"recipe values row {spec.rows[i].name!r}'s method reads "
                                      f"are neither 'source:' nor 'assumed:': {', '.join(own)}"
                         + hint))
    return errs
