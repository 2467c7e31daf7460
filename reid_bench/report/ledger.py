"""The fidelity ledger of a table: what is the paper's, what is ours, and what ours costs.

``ledger_view(spec, variant_results, numbers)`` gives, for one table page:

- ``assumptions``: every assumed value of the recipe (table and row level), the method params,
  the evaluation settings and the dataset options, with its reason, the paper text it stands
  in for (``replaces``) and its ``alternatives``; values shared by several rows are listed once
  with the rows they cover;
- ``counts``: recipe values stated by the paper vs assumed (the index shows them), and the
  assumed params / evaluation / dataset values;
- ``variants``: for each assumption-variant run (results whose ``variant`` names
  ``variant:KEY=VALUE`` parts, reid_bench.table.variants) and each row × column × metric it covers,
  the canonical number and verdict next to the variant's: does the gap move with the reading?
- ``digits``: decimals the paper prints per column, so published numbers read as printed.

The renderers lay it out (``templates/_ledger.html.j2``, ``templates/_ledger.md.j2``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..spec import Spec
from ..table.overrides import variant_parts
from ..table.rowstate import merge_flags, most_withheld, reading
from ..table.traced_values import traced_values
from ..table.variants import variant_choices
from . import verdicts
from .fmt import delta

BLOCKS = {"recipe": "recipe", "params": "method params", "eval": "evaluation",
          "options": "dataset"}


@dataclass
class Assumption:
    key: str
    value: Any
    where: str  # "table", "rows: A, B", "column market"
    reason: str
    replaces: str | None
    alternatives: tuple
    block: str


@dataclass
class VariantNumber:
    """One number of a variant run beside the canonical one."""

    row: str
    dataset: str
    metric: str
    published: float | None
    main: float | None
    main_verdict: verdicts.Verdict
    value: float | None
    verdict: verdicts.Verdict
    n: int
    # Every flag of the variant's number (rowstate), its own assumption part included.
    flags: list[str] = field(default_factory=list)

    @property
    def move(self) -> float | None:
        return delta(self.value, self.main)


@dataclass
class VariantRun:
    variant: str  # the results ``variant`` string
    choices: list[tuple[str, str]]  # (key, value) of its assumption parts
    numbers: list[VariantNumber] = field(default_factory=list)
    synthetic: bool = False
    # The tier it ran in; its numbers stand beside the canonical ones of the same tier.
    tier: str = "full"

    @property
    def label(self) -> str:
        parts = [f"{k} = {v}" for k, v in self.choices]
        other = [p for p in variant_parts(self.variant) if not p.startswith("variant:")]
        tier = [f"{self.tier} tier"] if self.tier != "full" else []
        return "; ".join(parts + other + tier)


@dataclass
class Ledger:
    assumptions: list[Assumption]
    counts: dict[str, int]
    variants: list[VariantRun]
    digits: dict[tuple[str, str], int]


def _decimals(x: float) -> int:
    s = repr(float(x))
    return 0 if "e" in s else len(s.split(".")[1].rstrip("0")) if "." in s else 0


def published_digits(spec: Spec) -> dict[tuple[str, str], int]:
    """Per (column, metric): the most decimals any published number of it has, so "85.90"
    prints as 85.90 when the column has two. A column of whole numbers tells nothing (YAML
    keeps no trailing zeros): it prints with the report's usual two decimals."""
    out: dict[tuple[str, str], int] = {}
    for r in spec.rows:
        for ds, ms in r.published.items():
            for m, x in ms.items():
                if x is not None:
                    out[(ds, m)] = max(out.get((ds, m), 0), _decimals(x))
    return {k: d or 2 for k, d in out.items()}


def assumptions(spec: Spec) -> list[Assumption]:
    """Every assumed value of ``spec``, one entry per (key, value, reason), rows merged."""
    runnable = [r.name for r in spec.rows if r.runnable]
    groups: dict[tuple, list[str]] = {}
    first: dict[tuple, Any] = {}
    for t in traced_values(spec):
        if not t.assumed:
            continue
        g = (t.key, repr(t.value), t.assumed, t.scope == "column" and t.owner)
        groups.setdefault(g, []).append(t.owner)
        first.setdefault(g, t)
    out = []
    for g, owners in groups.items():
        t = first[g]
        if t.scope == "table":
            where = "table"
        elif t.scope == "column":
            where = f"column {t.owner}"
        elif sorted(owners) == sorted(runnable) and len(owners) > 1:
            where = "every row"
        else:
            where = ("row " if len(owners) == 1 else "rows ") + ", ".join(owners)
        out.append(Assumption(t.key, t.value, where, t.assumed, t.replaces, t.alternatives,
                              t.block))
    return out


def counts(spec: Spec) -> dict[str, int]:
    """``recipe_stated`` / ``recipe_assumed``: traced recipe values (table recipe plus row
    overrides) citing the paper vs assumed, the latter including ``recipe_default``: values
    the spec leaves out (the Recipe's defaults, ``assumed: default``); ``other_assumed``: assumed params, evaluation and
    dataset values; ``with_alternatives``: assumed values a variant run can try."""
    tv = traced_values(spec)
    rec = [t for t in tv if t.block == "recipe"]
    from ..spec.defaults import DEFAULT_REASON

    # A default applies per row; counted once per (key, value) like the assumptions list.
    defaults = {(t.key, repr(t.value)) for t in rec if t.assumed == DEFAULT_REASON}
    return {"recipe_stated": sum(1 for t in rec if t.source),
            "recipe_assumed": sum(1 for t in rec if t.assumed and t.assumed != DEFAULT_REASON)
            + len(defaults),
            "recipe_default": len(defaults),
            "other_assumed": sum(1 for t in tv if t.block != "recipe" and t.assumed),
            "with_alternatives": sum(1 for t in tv if t.assumed and t.alternatives)}


def variant_runs(spec: Spec, vdf: pd.DataFrame, numbers: dict[tuple, Any],
                 long_metrics) -> list[VariantRun]:
    """Each variant's numbers beside the canonical ones of its tier. ``numbers[(tier, row, ds,
    metric)]`` is the report's canonical ``Number`` (the headline's for the full tier, the
    tier's block's otherwise); ``long_metrics`` turns results into long form."""
    out: list[VariantRun] = []
    if vdf.empty:
        return out
    from ..store.results import TIERS

    order = {t: i for i, t in enumerate(TIERS)}
    groups = vdf.groupby([vdf["tier"].astype(str), vdf["variant"].fillna("").astype(str)])
    for (tier, variant), sub in sorted(groups, key=lambda g: (order.get(g[0][0], 9), g[0][1])):
        run = VariantRun(variant, variant_choices(variant),
                         synthetic=bool(sub["synthetic"].astype(bool).any()), tier=tier)
        lm = long_metrics(sub)
        lm = lm[lm["status"] == "ok"]
        for (row, ds, m), grp in lm.groupby(["row", "dataset", "metric"], sort=False):
            main = numbers.get((tier, row, ds, m))
            if main is None:
                continue  # a metric the table does not print
            band = verdicts.tolerance(m, spec.tolerances)
            mean = float(grp["value"].mean())
            states = list(grp["state"])
            # Its verdict is withheld for every flag but its own assumption reading (the
            # point of the ledger: does the verdict move with the reading?).
            withheld = most_withheld(reading(s) for s in states)
            run.numbers.append(VariantNumber(
                row, ds, m, main.published, main.mean, main.verdict, mean,
                verdicts.verdict("ok", main.published, mean, band, withheld=withheld),
                len(grp), merge_flags(states)))
        order = {r.name: i for i, r in enumerate(spec.rows)}
        run.numbers.sort(key=lambda x: (order.get(x.row, 1 << 30), x.dataset, x.metric))
        out.append(run)
    return out


def ledger_view(spec: Spec, vdf: pd.DataFrame, numbers: dict[tuple, Any],
                long_metrics) -> Ledger:
    return Ledger(assumptions(spec), counts(spec),
                  variant_runs(spec, vdf, numbers, long_metrics), published_digits(spec))
