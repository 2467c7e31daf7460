"""Check a paper's conclusions (the spec's ``claims``) on the reproduced numbers.

Every claim reduces to pairwise comparisons "row A beats row B by more than ``margin``" on each
covered (dataset column, metric):

- ordering ``[A, B, C]``: A > B, A > C and B > C (every pair, so a partly run table still
  checks what it can);
- best ``row`` among ``among``: row > each other row;
- improvement ``row`` over ``baseline`` by ``margin``: row − baseline > margin.

Seed spread: when both rows have ≥ 2 seeds the difference of means must clear ``Z`` standard
errors, ``se = sqrt(sA²/nA + sB²/nB)``, to count as held (or fall below −Z·se to count as not
held); in between it is undecided. With a single seed the spread is unknown: the sign decides and
the comparison carries a "1 seed" note. A missing number makes the comparison undecided. A claim
holds when every comparison holds, is not held when any comparison fails, otherwise undecided.
The same check runs on the published numbers, so a reader sees the claim is the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..spec import BestClaim, ImprovementClaim, OrderingClaim, Spec

Z = 2.0  # ≈ 95 % two-sided for a normal difference of means

HELD, NOT_HELD, UNDECIDED = "held", "not held", "undecided"


@dataclass(frozen=True)
class Stat:
    """A reproduced number: mean and sample std over ``n`` seeds."""

    mean: float
    std: float = 0.0
    n: int = 1
    synthetic: bool = False


@dataclass
class Comparison:
    dataset: str
    metric: str
    better: str
    worse: str
    margin: float
    diff: float | None = None  # mean(better) − mean(worse) − margin
    threshold: float = 0.0  # Z · se
    status: str = UNDECIDED
    note: str = ""
    published_status: str = UNDECIDED


@dataclass
class ClaimResult:
    claim: OrderingClaim | BestClaim | ImprovementClaim
    statement: str
    status: str
    published_status: str
    comparisons: list[Comparison] = field(default_factory=list)
    synthetic: bool = False
    missing_rows: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """Why an undecided claim is undecided ('' otherwise)."""
        if self.status != UNDECIDED:
            return ""
        missing = sum(1 for c in self.comparisons if c.diff is None)
        if not self.comparisons:
            return "no comparison covers this claim"
        rows = ", ".join(self.missing_rows)
        if missing == len(self.comparisons):
            return f"not run: no reproduced number for {rows}"
        if missing:
            return (f"{missing} of {len(self.comparisons)} comparisons lack a reproduced "
                    f"number ({rows})")
        return "differences within the seed spread"

    @property
    def label(self) -> str:
        if self.synthetic:
            return f"synthetic: not comparable (would read: {self.status})"
        return self.status

    @property
    def css(self) -> str:
        return "synthetic" if self.synthetic else self.status.replace(" ", "")


def compare_pair(a: Stat | None, b: Stat | None, margin: float = 0.0) -> tuple[str, float | None,
                                                                                float, str]:
    """``(status, diff, threshold, note)`` for "a beats b by more than margin"."""
    if a is None or b is None:
        return UNDECIDED, None, 0.0, "no reproduced number for " + (
            "either row" if a is None and b is None else "one row")
    diff = a.mean - b.mean - margin
    if a.n >= 2 and b.n >= 2:
        thr = Z * math.sqrt(a.std ** 2 / a.n + b.std ** 2 / b.n)
        note = f"{Z:g}·se = {thr:.2f}"
    else:
        thr, note = 0.0, "1 seed: spread unknown"
    if diff > thr:
        return HELD, diff, thr, note
    if diff < -thr:
        return NOT_HELD, diff, thr, note
    return UNDECIDED, diff, thr, note + ("; tie" if diff == 0 else "; within the seed spread")


def _pairs(claim) -> tuple[list[tuple[str, str]], float]:
    if isinstance(claim, OrderingClaim):
        # Every pair, not only neighbours: with some rows not run, A > C is still checkable.
        rows = claim.rows
        return [(rows[i], rows[j]) for i in range(len(rows)) for j in range(i + 1, len(rows))], 0.0
    if isinstance(claim, BestClaim):
        return [(claim.row, r) for r in claim.among if r != claim.row], 0.0
    return [(claim.row, claim.baseline)], claim.margin


def statement(claim) -> str:
    """A one-line rendering of the claim ("A > B > C", "A best of {…}", "A ≥ B + 1.0")."""
    if isinstance(claim, OrderingClaim):
        return " > ".join(claim.rows)
    if isinstance(claim, BestClaim):
        others = [r for r in claim.among if r != claim.row]
        return f"{claim.row} is best among {{{', '.join([claim.row, *others])}}}"
    return f"{claim.row} > {claim.baseline} + {claim.margin:g} pt"


def _aggregate(statuses: list[str]) -> str:
    if not statuses:
        return UNDECIDED
    if NOT_HELD in statuses:
        return NOT_HELD
    if all(s == HELD for s in statuses):
        return HELD
    return UNDECIDED


def check_claims(spec: Spec, reproduced: Callable[[str, str, str], Stat | None],
                 published: Callable[[str, str, str], float | None]) -> list[ClaimResult]:
    """Evaluate every claim of ``spec``. ``reproduced(row, dataset, metric)`` returns our
    Stat (None when not run); ``published(row, dataset, metric)`` the paper's number."""
    out = []
    for claim in spec.claims:
        pairs, margin = _pairs(claim)
        comps: list[Comparison] = []
        synthetic = False
        missing: list[str] = []
        for ds in claim.datasets or list(spec.datasets):
            metrics = [m for m in spec.column_metrics(ds)
                       if claim.metrics is None or m in claim.metrics]
            for m in metrics:
                for hi, lo in pairs:
                    a, b = reproduced(hi, ds, m), reproduced(lo, ds, m)
                    missing += [r for r, x in ((hi, a), (lo, b)) if x is None and r not in missing]
                    synthetic |= bool((a and a.synthetic) or (b and b.synthetic))
                    st, diff, thr, note = compare_pair(a, b, margin)
                    pa, pb = published(hi, ds, m), published(lo, ds, m)
                    pst = (compare_pair(Stat(pa), Stat(pb), margin)[0]
                           if pa is not None and pb is not None else UNDECIDED)
                    comps.append(Comparison(ds, m, hi, lo, margin, diff, thr, st, note, pst))
        out.append(ClaimResult(claim, statement(claim), _aggregate([c.status for c in comps]),
                               _aggregate([c.published_status for c in comps]), comps,
                               synthetic, missing))
    return out
