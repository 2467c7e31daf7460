"""CSV meant for people: cells a spreadsheet would run as a formula are defused.

A text cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab / carriage return) is run as
a formula by Excel, LibreOffice and Google Sheets (CSV injection: ``=HYPERLINK(...)``,
``=cmd|...``). Spec row names, error messages and variant keys reach our CSV exports, so
``to_csv`` prefixes such text with ``'``, which spreadsheets show as text. Numbers stay numbers:
a negative delta (a float, or text that reads as a finite number) is left alone.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defuse(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula;
    anything else (numbers, None, text that reads as a number) unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        if math.isfinite(float(value)):
            return value  # "-3.5": a number written as text, not a formula
    except ValueError:
        pass
    return "'" + value


def to_csv(df: pd.DataFrame) -> str:
    """``df.to_csv(index=False)`` with every text cell and column name ``defuse``d."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c].dtype):
            out[c] = out[c].map(defuse)
    out.columns = [defuse(c) for c in out.columns]
    return out.to_csv(index=False)
