"""``metrics.csv``: a training's history, one row per epoch (kind ``epoch``), per N steps
(``steps``) and per monitoring evaluation (``monitor``), and its bounded reader.

Columns: ``stage, kind, epoch, step, epochs`` (the stage's planned epochs), ``seconds``,
``img_per_s``, ``lr`` (the schedule's base rate) and ``lr_group<i>`` (each parameter group's),
then every scalar the method's step reports (``loss`` and its terms, training ``acc``) and, in
``monitor`` rows, the protocol's metrics (``rank1``, ``mAP``...). ``epoch`` counts from 1 (the
epoch a ``steps`` row falls in, or the one just completed); ``step`` is the stage's optimisation
step at the row's end. A results folder is untrusted input: ``read_rows`` bounds the file size,
row count, column count and cell length and accepts only this format.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..core import atomic
from ..core.errors import ResultsError

FILE = "metrics.csv"
KINDS = ("epoch", "steps", "monitor")
BASE = ("stage", "kind", "epoch", "step", "epochs", "seconds", "img_per_s", "lr")
_TEXT = ("stage", "kind")
_INT = ("epoch", "step", "epochs")
# Bounds of a history read from a results folder.
MAX_BYTES = 64 * 2**20
MAX_ROWS = 500_000
MAX_COLUMNS = 200
MAX_CELL = 200
_NAME = re.compile(r"^[A-Za-z0-9_.@#/+-]{1,64}$")

Row = dict[str, Any]


def columns_of(rows: Iterable[Row]) -> list[str]:
    """``BASE`` then every other key of ``rows`` in order of first appearance (lr groups
    first)."""
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            if k not in BASE:
                seen.setdefault(k, None)
    extra = list(seen)
    lrs = sorted((k for k in extra if k.startswith("lr_group")),
                 key=lambda k: int(k[8:]) if k[8:].isdigit() else 0)
    return [*BASE, *lrs, *(k for k in extra if k not in lrs)]


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # round-trips exactly; nan and inf as Python writes them
    return str(v)


def to_text(rows: Sequence[Row]) -> str:
    """``rows`` as CSV text (header: ``columns_of(rows)``; a missing value is empty)."""
    cols = columns_of(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def write_rows(path: Path, rows: Sequence[Row]) -> Path:
    """Write ``rows`` to ``path`` atomically (the whole file: a reader never sees half a row)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_text(Path(path), to_text(rows))


def _value(col: str, text: str, where: str) -> Any:
    if text == "":
        return None
    if col in _TEXT:
        if col == "kind" and text not in KINDS:
            raise ResultsError(f"{where}: kind {text!r} is not one of {', '.join(KINDS)}")
        return text
    try:
        x = float(text)
    except ValueError:
        raise ResultsError(f"{where}: column {col} holds {text[:40]!r}, not a number") from None
    if col in _INT:
        if not x.is_integer() or x < 0:
            raise ResultsError(f"{where}: column {col} holds {text!r}, not a count")
        return int(x)
    return x


def read_rows(path: Path) -> list[Row]:
    """The rows of the history file ``path`` (numbers as float, ``epoch``/``step``/``epochs``
    as int, empty cells left out); [] when it does not exist. Raises ``ResultsError`` naming
    the file and line on anything this module would not have written or beyond the bounds."""
    path = Path(path)
    if not path.is_file():
        return []
    if path.stat().st_size > MAX_BYTES:
        raise ResultsError(f"{path}: {path.stat().st_size} bytes, over the {MAX_BYTES}-byte "
                           "limit of a training history")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable training history ({exc})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return []
    if len(header) > MAX_COLUMNS or tuple(header[:len(BASE)]) != BASE:
        raise ResultsError(f"{path}:1: not a training history (header must start with "
                           f"{','.join(BASE)} and have at most {MAX_COLUMNS} columns)")
    bad = [c for c in header if not _NAME.match(c)]
    if bad or len(set(header)) != len(header):
        raise ResultsError(f"{path}:1: bad or repeated column name(s) {bad[:3] or header}")
    rows: list[Row] = []
    for line, rec in enumerate(reader, 2):
        if line - 1 > MAX_ROWS:
            raise ResultsError(f"{path}: more than {MAX_ROWS} rows")
        if len(rec) != len(header):
            raise ResultsError(f"{path}:{line}: {len(rec)} fields, the header has {len(header)}")
        if any(len(x) > MAX_CELL for x in rec):
            raise ResultsError(f"{path}:{line}: a field longer than {MAX_CELL} characters")
        row = {c: _value(c, x, f"{path}:{line}") for c, x in zip(header, rec, strict=True)}
        if not row.get("stage") or row.get("kind") is None:
            raise ResultsError(f"{path}:{line}: a row without stage or kind")
        rows.append({k: v for k, v in row.items() if v is not None})
    return rows


def plateaued(rows: Sequence[Row], term: str = "loss") -> list[str]:
    """Why each stage of ``rows`` looks stuck: its ``term`` at the end of the first quarter of
    its planned epochs (epoch ceil(E/4), needs E >= 5 so that is not epoch 1) is not below its
    epoch-1 value. One message per such stage; [] when every stage learns or is too short."""
    out = []
    for stage in dict.fromkeys(r["stage"] for r in rows):
        ep = {r["epoch"]: r for r in rows if r["stage"] == stage and r["kind"] == "epoch"
              and isinstance(r.get(term), float)}
        total = max((r.get("epochs") or 0 for r in ep.values()), default=0)
        q = math.ceil(total / 4)
        if q < 2 or 1 not in ep or q not in ep:
            continue
        first, at_q = ep[1][term], ep[q][term]
        if not at_q < first:
            out.append(f"[{stage}] {term} did not decrease in the first quarter of training "
                       f"(epoch 1: {first:.4g}, epoch {q} of {total}: {at_q:.4g})")
    return out


def clean_rows(obj: Any, where: str) -> list[Row]:
    """History rows as stored in a cell JSON (``obj``, untrusted), checked like ``read_rows``
    checks a file: a list of at most ``MAX_ROWS`` objects with valid column names, a known
    ``kind``, a ``stage``, counts for ``epoch``/``step`` and numbers elsewhere."""
    if not isinstance(obj, list) or len(obj) > MAX_ROWS:
        raise ResultsError(f"{where}: history is not a list of at most {MAX_ROWS} rows")
    out = []
    for i, r in enumerate(obj):
        if not isinstance(r, dict) or len(r) > MAX_COLUMNS:
            raise ResultsError(f"{where}: history row {i} is not an object of at most "
                               f"{MAX_COLUMNS} entries")
        row: Row = {}
        for k, v in r.items():
            if not isinstance(k, str) or not _NAME.match(k):
                raise ResultsError(f"{where}: history row {i}: bad column name {str(k)[:40]!r}")
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (str, int, float)) or \
                    (isinstance(v, str) and (k not in _TEXT or len(v) > MAX_CELL)):
                raise ResultsError(f"{where}: history row {i}: {k} holds {str(v)[:40]!r}")
            row[k] = _value(k, v if isinstance(v, str) else repr(v), f"{where}: row {i}")
        if not row.get("stage") or row.get("kind") is None or "step" not in row \
                or "epoch" not in row:
            raise ResultsError(f"{where}: history row {i} lacks stage, kind, epoch or step")
        out.append(row)
    return out
