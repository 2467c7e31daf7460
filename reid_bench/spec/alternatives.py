"""Validation of a spec's assumption alternatives (called once by ``spec.load_spec``): each
alternative must validate where ``--variant KEY=VALUE`` would put it (reid_bench.table.variants)."""

from __future__ import annotations

from typing import Any

from ..table.traced_values import traced_values
from ..table.variants import nest, set_eval
from . import Row, Spec, deep_merge, untrace
from .recipes import recipe_tree


def check_alternatives(spec: Spec) -> list[tuple]:
    """``(key path, message)`` for every alternative that would not validate where it goes:
    a method param, a recipe value (against the row's method recipe) or an eval setting."""
    from pydantic import ValidationError

    from ..core.registry import METHODS

    errs: list[tuple] = []
    rows = {r.name: r for r in spec.rows}
    for t in traced_values(spec, defaults=False):
        for alt in t.alternatives:
            where = t.path + ("alternatives",)
            block, sub = t.key.split(".", 1)
            try:
                if block == "options":
                    continue  # loader options are checked when the dataset loads
                if block == "eval":
                    ev = (spec.datasets[t.owner].eval if t.scope == "column"
                          else rows[t.owner].eval)
                    set_eval(ev, sub, alt)
                    continue
                # A same_as row running another table's training has none of this table's
                # recipe (spec/same_as.py).
                targets = ([rows[t.owner]] if t.scope == "row"
                           else [r for r in spec.rows if r.runnable and r.method
                                 and not (r.shared and r.shared.takes_training)])
                for r in targets:
                    if r.method not in METHODS:
                        continue
                    m = METHODS.get(r.method)
                    if block == "params":
                        m.Params.model_validate({**r.params, sub: alt})
                    else:
                        v = spec_recipe_with(spec, r, tuple(sub.split(".")), alt)
                        m.Recipe.model_validate(v)
            except ValidationError as exc:
                first = exc.errors()[0]
                errs.append((where, f"alternative {alt!r} does not validate: {first['msg']}"))
    return errs


def spec_recipe_with(spec: Spec, row: Row, path: tuple, value: Any) -> dict:
    """The resolved recipe values of ``row`` with ``path`` set to ``value``."""
    tree = deep_merge(recipe_tree(spec, row), nest(path, {"value": value, "assumed": "alternative"}))
    return untrace(tree)[0]
