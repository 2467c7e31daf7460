"""Per-number verdicts: is a reproduced number within the tolerance band of the published one?

A verdict compares the mean over seeds with the published number using an absolute band in
percentage points. Bands come from the spec's ``tolerances`` (per metric) and otherwise from
``DEFAULT_TOLERANCES`` below, read from ``reid_bench.core.metrics.METRICS``.

Verdicts: ``reproduced`` (|mean − published| ≤ band), ``better`` (above the band), ``worse``
(below the band), ``not run`` (with the reason), ``failed`` (with the error; ``diverged`` is a
failure too), ``quoted`` (a row the paper copies from another paper), ``n/a`` (the row does not
run on this column or the paper prints "-"). Numbers computed on synthetic data get the verdict
``synthetic``: the comparison is still computed (``would_be``) but is never presented as one.
The same holds for ``edited`` (a row changed by hand since it was written), ``stale`` (recorded
with another recipe than the current spec's) and ``variant`` (a spec copy or --set overrides).
Numbers on real data that still deviate from the paper's setup (``--subset`` of the dataset,
``--smoke-recipe``) get ``not comparable`` the same way, with their flags.
An aggregate over fewer splits × seeds than planned is ``incomplete k/n``: its partial mean is
never shown as the table's number (``would_be`` keeps the comparison for reference).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.metrics import METRICS

# Suite-wide tolerance bands, absolute percentage points (why these values: reid_bench.core.metrics).
DEFAULT_TOLERANCES: dict[str, float] = {name: m.tolerance for name, m in METRICS.items()}

# Display order from most to least severe: a row's verdict is its most severe number's.
SEVERITY = ("failed", "edited", "stale", "data changed", "not run", "incomplete", "worse", "synthetic",
            "not comparable", "variant", "better", "reproduced", "n/a", "quoted")
# Verdicts that withhold a comparison (shown only as "would read: ..."): the number is not a
# reproduction of the paper's recipe, or can no longer be trusted as one.
WITHHELD = ("edited", "stale", "data changed", "variant", "synthetic", "not comparable")

LABELS: dict[str, str] = {
    "reproduced": "reproduced",
    "better": "better",
    "worse": "worse",
    "not run": "not run",
    "failed": "failed",
    "quoted": "quoted",
    "n/a": "n/a",
    "synthetic": "synthetic: not comparable",
    "edited": "edited: row changed by hand",
    "stale": "stale (recipe changed)",
    "data changed": "data changed since the run",
    "variant": "deviates from the paper's recipe",
    "not comparable": "not comparable",
    # Fewer splits × seeds finished ok than planned: the partial mean is not the table's number.
    "incomplete": "incomplete",
}

# Text symbols beside the colour, so the verdict survives grey-scale printing and markdown.
SYMBOLS: dict[str, str] = {
    "reproduced": "✓", "better": "▲", "worse": "▼", "not run": "○", "failed": "✗",
    "quoted": "—", "n/a": "·", "synthetic": "⚠", "edited": "✎", "stale": "↻", "data changed": "⇄", "variant": "≠",
    "not comparable": "⚠", "incomplete": "◐",
}


def tolerance(metric: str, overrides: dict[str, float] | None = None) -> float:
    """The band for ``metric`` ("rank1", "rank1@100000", …): the spec's own value for the exact
    metric, then for its base name, then the suite default (2 points for unknown names)."""
    overrides = overrides or {}
    base = metric.split("@")[0]
    for key in (metric, base):
        if key in overrides:
            return float(overrides[key])
    return DEFAULT_TOLERANCES.get(base, 2.0)


@dataclass(frozen=True)
class Verdict:
    """``key`` (one of LABELS), ``would_be`` (the comparison hidden behind a synthetic label)
    and ``band`` (the tolerance used)."""

    key: str
    band: float | None = None
    would_be: str | None = None
    detail: str | None = None  # "k/n" runs of an incomplete aggregate

    @property
    def label(self) -> str:
        if self.key == "incomplete":
            return f"incomplete {self.detail}" + (f" (partial mean would read: {self.would_be})"
                                                  if self.would_be else "")
        if self.key in WITHHELD and self.would_be:
            return f"{LABELS[self.key]} (would read: {self.would_be})"
        return LABELS[self.key]

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.key]


def compare(published: float | None, mean: float | None, band: float) -> str | None:
    """``reproduced`` / ``better`` / ``worse`` for a reproduced ``mean`` against
    ``published``; None when either is missing."""
    if published is None or mean is None:
        return None
    delta = mean - published
    if abs(delta) <= band + 1e-9:
        return "reproduced"
    return "better" if delta > 0 else "worse"


def verdict(status: str, published: float | None, mean: float | None, band: float,
            synthetic: bool = False, flag: str = "", flags: tuple[str, ...] | list[str] = (),
            *, withheld: str | None = None) -> Verdict:
    """The verdict of one number given the cell ``status`` (ok | failed | diverged | not run |
    quoted | n/a), the published value, our mean over seeds, whether it is synthetic, its
    trust ``flag`` ("edited", "stale", "variant" or ""; a flag outranks synthetic) and its
    deviation ``flags`` (e.g. "subset", "smoke recipe": then ``not comparable``).
    ``withheld`` (``rowstate.RowState.withheld`` of the number's rows) replaces the last three
    when given: the verdict key that stands in for the comparison, "" when it may be shown."""
    if status in ("quoted", "n/a", "not run"):
        return Verdict(status, band)
    if status in ("failed", "diverged"):
        return Verdict("failed", band)
    cmp = compare(published, mean, band)
    if cmp is None:
        # The paper prints "-" here (or the metric was not computed): nothing to compare.
        return Verdict("n/a", band)
    if withheld is not None:
        return Verdict(withheld, band, would_be=cmp) if withheld else Verdict(cmp, band)
    if flag:
        return Verdict(flag, band, would_be=cmp)
    if synthetic:
        return Verdict("synthetic", band, would_be=cmp)
    if flags:
        return Verdict("not comparable", band, would_be=cmp)
    return Verdict(cmp, band)


def worst(keys: list[str]) -> str:
    """The most severe verdict key of ``keys`` (``n/a`` for an empty list)."""
    present = [k for k in SEVERITY if k in set(keys)]
    return present[0] if present else "n/a"
