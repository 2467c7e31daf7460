"""``validate``'s text for the consistency checks (``spec/consistency.py``): the errors as
``file:line: key: message`` and, with ``--consistency``, what was checked and what fits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..core.yamlio import load_yaml_with_lines
from ..eval.ranking import AP_DEFINITIONS
from .consistency import Consistency, printed_note, table_line
from .messages import format_errors
from .schema import Spec


def error_text(path: str, errors: list[tuple]) -> str:
    """``errors`` of the spec at ``path`` with file and line, as load errors are shown."""
    _, lines = load_yaml_with_lines(Path(path))
    return format_errors(Path(path), lines, errors)


def details(specs: list[Spec], result: Consistency) -> list[str]:
    """Per table its consistency line and each decidable row × column, then the totals."""
    out = []
    for s in specs:
        out.append(f"{s.paper.id}/{s.table.id}: {table_line(s, result.maps)}")
        for c in result.maps:
            if c.spec.path == s.path and c.decidable:
                who = "" if c.runnable else " (quoted)"
                out.append(f"    {c.row!r}{who} [{c.column}, ap: {c.ap}]: {c.describe()}")
    mine = [c for c in result.maps if c.spec.path in {s.path for s in specs}]
    dec = [c for c in mine if c.decidable]
    fits = Counter(tuple(c.feasible) for c in dec)
    out.append(f"consistency: {len(specs)} spec(s), {result.cmc_checked} published row×column "
               f"CMCs checked (non-decreasing, in [0, 100]); {len(mine)} with a printed mAP, "
               f"{len(dec)} decidable ({sum(c.runnable for c in dec)} runnable), "
               f"{len(mine) - len(dec)} not decidable; tolerance: {printed_note()}")
    for feas, n in sorted(fits.items(), key=lambda kv: -kv[1]):
        names = " and ".join(feas) if feas else "no AP definition"
        out.append(f"    feasible under {names}: {n}")
    bad = sum(len(v) for v in result.errors.values())
    out.append(f"    errors: {bad}; AP definitions checked: {', '.join(AP_DEFINITIONS)}")
    return out
