"""The results CSV: one row per cell run, keyed by ``KEY`` (row × dataset column × split × seed
× tier × variant), with its status, metrics and provenance.

``results/<paper>/<table>.csv`` is rewritten atomically (temp file + rename, under a file lock)
each time a cell finishes, so a crash never leaves a partial row and two runners never
interleave. Metrics are in **percent** (0–100), like the papers. Per-cell details (CMC curve,
training history, resolved recipe, traceback) go to ``results/<paper>/<table>/<cell_id>.json``.
``results/README.md`` documents every column.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from ..core import atomic
from ..core.errors import ResultsError
from ..core.hashing import short_hash
from ..core.safepath import check_id, check_row_name, inside, row_slug

# The schema this file is read and written by (callers also read it here, as results.KEY, …).
from .columns import (
    BOOL_COLUMNS,
    COLUMNS,
    KEY,
    METRIC_COLUMNS,
    MIGRATED_KEY,
    STATUSES,
    TEXT_COLUMNS,
    TIERS,
)
from .row_digest import row_digest

log = logging.getLogger(__name__)

def table_csv(results_dir: Path, paper: str, table: str) -> Path:
    """``<results_dir>/<paper>/<table>.csv``, refused when it would lie outside the folder."""
    inside(results_dir, Path(results_dir) / paper / f"{table}.csv")
    return Path(results_dir) / paper / f"{table}.csv"


def cell_dir(results_dir: Path, paper: str, table: str) -> Path:
    """``<results_dir>/<paper>/<table>``: the table's per-cell files (refused when outside)."""
    inside(results_dir, Path(results_dir) / paper / table)
    return Path(results_dir) / paper / table


def cell_file(cells_dir: Path, name: str) -> Path:
    """``cells_dir / name`` (a cell's JSON, lease or work folder), refused with
    ``safepath.UnsafePathError`` unless it lies inside ``cells_dir``."""
    inside(cells_dir, Path(cells_dir) / name)
    return Path(cells_dir) / name


def cell_id(row: str, dataset: str, seed: int, tier: str | bool = "full",
            split: int | None = None, variant: str = "") -> str:
    """File-name-safe id of a cell, e.g. ``resnet-50-i__market__s0__smoke``. ``tier`` may be
    given as the old ``smoke`` bool. A non-canonical ``variant`` adds a short hash of it."""
    tier = _tier(tier)
    # The spec refuses such names with file:line (spec/names.py); this guards every other
    # caller, so an id is always one path component of the table's folder.
    why = check_id(dataset) or check_row_name(row)
    if why:
        raise ResultsError(f"cell of row {row!r}, column {dataset!r}: {why}")
    part = "" if split is None else f"__split{int(split)}"
    out = f"{row_slug(row)}__{dataset}{part}__s{int(seed)}" + ("" if tier == "full" else f"__{tier}")
    if variant:
        out += "__v" + short_hash(variant, 8)
    return out


def _tier(tier: str | bool) -> str:
    if isinstance(tier, bool):
        return "smoke" if tier else "full"
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; allowed: {', '.join(TIERS)}")
    return tier


def _key_text(v: Any) -> str:
    """A key value as text, the same whether it was written or read back: empty for a missing
    split, integral floats (pandas reads an int column with blanks as float) without '.0'."""
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def split_of(v: Any) -> int | None:
    """The split index of a results row (None when the column has no split axis)."""
    return None if _key_text(v) == "" else int(float(v))


def read_results(path: Path) -> pd.DataFrame:
    """Read a results CSV, checking it is one this tool wrote; raises ResultsError naming the
    file and the problem when it was edited into an invalid state."""
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    try:
        # Columns this version does not know (a newer version's, or added by hand) are read
        # as text, so the next write keeps them as they were (``upsert_row``).
        header = pd.read_csv(path, nrows=0).columns
        text = {c: str for c in [*TEXT_COLUMNS, *(c for c in header if c not in COLUMNS)]}
        # Only an empty field is missing: a row may well be named "NA" or "nan".
        df = pd.read_csv(path, dtype=text, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not a readable results CSV ({exc}). Restore it from "
                           f"backup or move it away; finished cells will then re-run.") from None
    # ``tier`` and ``variant`` joined the key later; files written before them are migrated
    # below (smoke → tier, canonical variant), so they are not required here.
    missing = [c for c in ("paper", "table", *KEY, "status") if c not in df.columns
               and c not in MIGRATED_KEY]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {missing}. This file was edited or is "
                           "not a reid-bench results file; move it away to start fresh.")
    bad = sorted(set(df["status"].dropna()) - set(STATUSES))
    if bad or df["status"].isna().any():
        raise ResultsError(f"{path}: invalid status value(s) {bad or ['<empty>']}; allowed: "
                           f"{', '.join(STATUSES)}. Fix or delete those lines.")
    for c in BOOL_COLUMNS:
        if c in df.columns:
            df[c] = df[c].map(_to_bool)
    # Files written before the tier/variant key: smoke → tier, canonical variant.
    if "tier" not in df.columns:
        df["tier"] = pd.NA
    smoke = df["smoke"] if "smoke" in df.columns else pd.Series(False, index=df.index)
    df["tier"] = [t if isinstance(t, str) and t else ("smoke" if s else "full")
                  for t, s in zip(df["tier"], smoke, strict=True)]
    if "variant" not in df.columns:
        df["variant"] = ""
    df["variant"] = df["variant"].fillna("")
    if "split" not in df.columns:
        df["split"] = float("nan")  # no split axis (what a blank split reads as)
    dup = df.duplicated(KEY, keep=False)
    if dup.any():
        rows = df.loc[dup, KEY].drop_duplicates().to_dict("records")
        raise ResultsError(f"{path}: the same cell appears more than once: {rows[:3]}. "
                           "Delete the duplicate lines.")
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    return df


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    try:
        return bool(int(v))
    except (TypeError, ValueError):
        return False


def lock_for(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock")


def upsert_row(path: Path, row: dict[str, Any], *, keep_ok: bool = False) -> bool:
    """Insert ``row`` or replace the row with the same ``KEY`` (row, dataset, split, seed,
    tier, variant), rewriting the CSV atomically under the lock. With ``keep_ok`` a row whose
    status is not ok never replaces an ok row (checked under the lock): returns False and
    writes nothing then, else True."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown results columns {sorted(unknown)}")
    row = dict(row)
    row["tier"] = _tier(row.get("tier") or bool(row.get("smoke")))
    row["smoke"] = row["tier"] == "smoke"
    row["variant"] = row.get("variant") or ""
    with lock_for(path):
        # Temp files left by a writer killed between write and rename: we hold the lock, so
        # nobody is writing them now.
        for stale in atomic.stale_temps(path):
            stale.unlink(missing_ok=True)
        df = read_results(path)
        mask = pd.Series(True, index=df.index)
        for k in KEY:
            mask &= df[k].map(_key_text) == _key_text(row.get(k))
        if keep_ok and row.get("status") != "ok" and (df.loc[mask, "status"] == "ok").any():
            return False
        df = df.loc[~mask]
        row["row_digest"] = row_digest({c: row.get(c) for c in COLUMNS})
        new = pd.DataFrame([{c: row.get(c) for c in COLUMNS}])
        df = new if df.empty else pd.concat([df, new], ignore_index=True)
        # Unknown columns are kept (after ours, in their order): a column a newer version
        # or a person added is never dropped by this version's write.
        extra = [c for c in df.columns if c not in COLUMNS]
        if extra:
            log.info("%s: keeping column(s) this version does not know: %s", path,
                     ", ".join(map(str, extra)))
        atomic.write_text(path, df[COLUMNS + extra].to_csv(index=False),
                          fault="csv_before_rename")
    return True


def check_writable(folder: Path) -> None:
    """Raise ResultsError (one line, naming ``folder`` and ``--results-dir``) unless results can
    be written into ``folder`` (created if missing): probed by creating and removing a file."""
    import os
    import tempfile

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ResultsError(f"results folder {folder} is not writable ({why}); pass a writable "
                           f"folder with --results-dir") from None


def write_cell_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(payload, indent=1, default=str),
                      fault="json_before_rename")


def cell_rows(path: Path) -> dict[tuple, dict[str, Any]]:
    """{cell key (``row_key``): its results row as a dict}, every status (whether a row finishes
    its cell is ``finished.is_finished``)."""
    return {row_key(r): r for r in read_results(path).to_dict("records")}


def refuse_id_clashes(path: Path, keys: Iterable[tuple]) -> None:
    """Raise ResultsError when two different cell keys would share one cell id (and so one
    JSON file, lease and work folder): among ``keys`` (``plan.CellKey``s), or with a row of the
    CSV at ``path``. Row slugs are unique per spec (the spec check) and the other parts are
    fixed-form; a variant is spelled as an 8-hex hash, so two variants may collide — refused
    here rather than overwriting each other's files."""
    seen: dict[str, tuple] = {}
    df = read_results(path)
    for _, r in df.iterrows():
        if isinstance(r.get("cell_id"), str) and r["cell_id"]:
            seen.setdefault(r["cell_id"], row_key(r))
    for key in keys:
        cid = str(key)
        other = seen.setdefault(cid, tuple(key))
        if other != tuple(key):
            raise ResultsError(f"{path}: cells {tuple(key)} and {other} would share the cell id "
                               f"{cid!r} (their files would overwrite each other): delete the "
                               "CSV line of the one no longer wanted, or run the other in a "
                               "separate results folder")


def row_key(r: Any) -> tuple:
    """The cell key of a results row in ``KEY`` order: equal to its ``plan.CellKey``."""
    return (r["row"], r["dataset"], split_of(r["split"]), int(r["seed"]), str(r["tier"]),
            _key_text(r["variant"]))


def all_results(results_dir: Path) -> Iterable[tuple[Path, pd.DataFrame]]:
    for p in sorted(Path(results_dir).glob("*/table*.csv")):
        yield p, read_results(p)


def metric_values(r: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of a results row: the fixed metric columns plus its
    ``extra_metrics`` JSON (e.g. ``rank1@100000``), finite values only."""
    vals = {m: r.get(m) for m in METRIC_COLUMNS}
    extra = r.get("extra_metrics")
    if isinstance(extra, str) and extra.strip():
        try:
            vals.update(json.loads(extra))
        except ValueError:
            pass
    out = {}
    for m, v in vals.items():
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if x == x:  # not NaN
            out[m] = x
    return out
