"""A row's recipe: the table recipe merged with the row's (and the --smoke overrides)."""

from __future__ import annotations

import copy

from .schema import Row, Spec
from .traced import untrace


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base`` (nested dicts merged, other values replaced)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and "value" not in v:
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def recipe_tree(spec: Spec, row: Row) -> dict:
    """``row``'s traced recipe tree: the table recipe ⊕ the row's, or, for a ``same_as`` row
    that runs the referenced row's training, that row's whole tree (``spec/same_as.py``)."""
    took = row.shared is not None and row.shared.takes_training
    return copy.deepcopy(row.recipe) if took else deep_merge(spec.recipe, row.recipe)


def smoke_tree(spec: Spec, row: Row) -> dict:
    """``row``'s ``--smoke`` recipe overrides (plain values), as ``recipe_tree`` chooses."""
    took = row.shared is not None and row.shared.takes_training
    return (copy.deepcopy(row.shared.smoke_recipe) if took
            else deep_merge(spec.smoke.recipe, row.smoke.recipe))


def resolved_recipe(spec: Spec, row: Row, *, smoke: bool) -> tuple[dict, dict[str, dict]]:
    """The recipe values for ``row`` (table recipe ⊕ row recipe, then ⊕ smoke overrides when
    ``smoke``; a ``same_as`` row's are the referenced row's) and the provenance of each value. Smoke overrides are ours, not the paper's;
    their provenance reads ``{"smoke": True}``."""
    values, prov, _ = untrace(recipe_tree(spec, row))
    if smoke:
        over = smoke_tree(spec, row)
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
