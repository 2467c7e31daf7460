"""How numbers and deviation flags read in every report format (HTML, markdown, JSON text).

"–" stands for a missing number; a minus sign is the typographic "−"; published numbers keep
the decimals the paper prints.
"""

from __future__ import annotations

import math
from typing import Any

from ..table.rowstate import FLAG_TEXT  # what each flag means, in one place


def delta(value: float | None, reference: float | None) -> float | None:
    """``value − reference``; None when either is missing."""
    if value is None or reference is None:
        return None
    return value - reference


def fmt(x: float | None, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals ("–" for None or NaN)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def signed(x: float | None) -> str:
    """``x`` with its sign, two decimals ("–" for None)."""
    return "–" if x is None else f"{x:+.2f}".replace("-", "−")


def fmt_published(x: float | None, digits: int | None) -> str:
    """A published number with the paper's decimals ("–" for a dash)."""
    return fmt(x, 2 if digits is None else digits)


def ours(n: Any) -> str:
    """"mean ± std" of a ``report.view.Number`` as shown in every format ("incomplete k/n"
    while planned runs are missing)."""
    if n.incomplete:
        return f"incomplete {n.runs}/{n.planned}"
    if n.mean is None:
        return "–"
    return fmt(n.mean) + (f" ± {fmt(n.std)}" if n.n > 1 else "")


def flags_text(flags: list[str]) -> str:
    """Plain sentences saying what the deviation ``flags`` mean for the numbers."""
    return ("Numbers marked " + " + ".join(flags) + " were "
            + "; ".join(FLAG_TEXT.get(f, f) for f in flags)
            + ". They test the setup on your data and are not comparable to the paper's: "
              "their verdicts read \"not comparable\".")
