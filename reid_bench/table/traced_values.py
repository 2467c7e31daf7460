"""Every traced value of a spec, flat: where it lives (its spec key, ``core.keyvalue``), its
value and its provenance (``source`` / ``assumed`` / ``replaces`` / ``alternatives``). The
quotes check, the alternatives check, the fidelity ledger and ``--variant`` read them here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec import Spec, untrace


@dataclass(frozen=True)
class Traced:
    """One traced value of a spec: where it lives, its value and where it comes from."""

    key: str  # "recipe.train.lr" | "params.reduction_mode" | "eval.ap"
    value: Any
    scope: str  # "table" (table recipe) | "row" | "column"
    owner: str  # "" for the table, else the row name or the column id
    source: str | None = None
    assumed: str | None = None
    replaces: str | None = None
    alternatives: tuple = ()
    path: tuple = field(default=(), compare=False)  # YAML key path, for error messages

    @property
    def block(self) -> str:
        return self.key.split(".")[0]


def _traced(key: str, value: Any, scope: str, owner: str, prov: dict, path: tuple) -> Traced:
    return Traced(key, value, scope, owner, prov.get("source"), prov.get("assumed"),
                  prov.get("replaces"), tuple(prov.get("alternatives") or ()), path)


def _leaves(values: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    if isinstance(values, dict) and values:
        out: dict[tuple, Any] = {}
        for k, v in values.items():
            out.update(_leaves(v, prefix + (k,)))
        return out
    return {prefix: values}


def traced_values(spec: Spec, *, defaults: bool = True) -> list[Traced]:
    """Every traced value of ``spec``: the table recipe, each runnable row's recipe overrides,
    the traced ``params``/``eval`` values (``spec.traced``), in spec order, then (``defaults``)
    every recipe value the spec leaves out, per row, as ``assumed: "default"``
    (``spec.defaults``). A default has no source, quote or alternatives: callers after those
    pass ``defaults=False`` and skip validating every row's method for them."""
    out: list[Traced] = []
    values, prov, _ = untrace(spec.recipe)
    for kp, v in _leaves(values).items():
        k = ".".join(kp)
        if k in prov:
            out.append(_traced(f"recipe.{k}", v, "table", "", prov[k], ("recipe",) + kp))
    index = {r.name: i for i, r in enumerate(spec.rows)}
    for r in spec.rows:
        # A same_as row running another table's training carries that table's recipe: its
        # traced values are that spec's (quoted from that paper, varied there).
        if not r.runnable or not r.recipe or (r.shared and r.shared.takes_training):
            continue
        values, prov, _ = untrace(r.recipe)
        for kp, v in _leaves(values).items():
            k = ".".join(kp)
            if k in prov:
                out.append(_traced(f"recipe.{k}", v, "row", r.name, prov[k],
                                   ("rows", index[r.name], "recipe") + kp))
    for e in spec.traced:
        sub = tuple(e["key"].split("."))
        path = (("datasets", e["owner"]) + sub if e["scope"] == "column"
                else ("rows", index.get(e["owner"], 0)) + sub)
        out.append(_traced(e["key"], e["value"], e["scope"], e["owner"], e, path))
    if not defaults:
        return out
    # A recipe value the spec leaves out is the Recipe's default: our choice, never the
    # paper's (spec.defaults).
    from ..spec.defaults import DEFAULT_REASON, untraced_leaves

    for u in untraced_leaves(spec):
        out.append(Traced(f"recipe.{u.key}", u.value, "row", u.row, assumed=DEFAULT_REASON,
                          path=("rows", u.row_index, "recipe")))
    return out
