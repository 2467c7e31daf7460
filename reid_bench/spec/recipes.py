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


def resolved_recipe(spec: Spec, row: Row, *, smoke: bool) -> tuple[dict, dict[str, dict]]:
    """The recipe values for ``row`` (table recipe ⊕ row recipe, then ⊕ smoke overrides when
    ``smoke``; a ``same_as`` row's are the referenced row's) and the provenance of each value. Smoke overrides are ours, not the paper's;
    their provenance reads ``{"smoke": True}``."""
    # A same_as row carries the referenced row's whole recipe (spec/same_as.py).
    tree = row.recipe if row.shared else deep_merge(spec.recipe, row.recipe)
    values, prov, _ = untrace(tree)
    if smoke:
        over = (row.shared.smoke_recipe if row.shared
                else deep_merge(spec.smoke.recipe, row.smoke.recipe))
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
