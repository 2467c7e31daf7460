"""Per-row trust flags of a results table, computed once for the report and exports.

A results row is flagged

- ``edited`` when its content no longer matches its ``row_digest`` (or it has none): it was
  changed by hand after the runner wrote it (``reid_bench.integrity``); or when it disagrees
  with its cell JSON or stored model (``reid_bench.verify.row_consistency``), which a
  recomputed digest does not hide;
- ``stale`` ("stale (recipe changed)") when its ``config_hash`` differs from the hash the
  current spec gives the same cell — the same computation ``reid-bench status`` uses
  (``reid_bench.status.ConfigHashes``).

A flagged number is shown with its flag and never counts as reproduced.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..integrity import row_edited
from ..overrides import overrides_from_json, spec_parts, variant_parts
from ..results import split_of
from ..spec import Spec
from ..verify import row_consistency

FLAGS = ("edited", "stale")


def annotate(spec: Spec, results_dir: Path, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (a results table as read) with two more columns: ``flag`` ("edited", "stale"
    or "") and ``flag_reason``."""
    df = df.copy()
    if df.empty:
        df["flag"], df["flag_reason"] = pd.Series(dtype=str), pd.Series(dtype=str)
        return df
    from ..plan import Cell
    from ..status import ConfigHashes

    hashes = ConfigHashes(spec, Path(results_dir))
    rows = {r.name: r for r in spec.rows}
    own = set(spec_parts(spec))
    written = [c for c in df.columns if c not in ("flag", "flag_reason")]
    flags, reasons = [], []
    for rec in df[written].to_dict("records"):
        # Its digest, then its records: a row that disagrees with its own cell JSON or stored
        # model (a digest recomputed after an edit) is edited too (reid_bench.verify).
        why = row_edited(rec) or row_consistency(rec, results_dir)
        if why:
            flags.append("edited")
            reasons.append(f"edited: {why}")
            continue
        row = rows.get(rec["row"])
        parts = variant_parts(rec.get("variant"))
        # Only cells this spec can re-plan: its own spec part plus --set overrides.
        comparable = {p for p in parts if not p.startswith("set:")} == own
        if rec["status"] == "ok" and row is not None and row.runnable and comparable:
            cell = Cell(row, str(rec["dataset"]), int(rec["seed"]), str(rec["tier"]),
                        split_of(rec["split"]), str(rec.get("variant") or ""))
            if hashes.is_stale(cell, str(rec["config_hash"]),
                               overrides_from_json(rec.get("overrides"))):
                flags.append("stale")
                reasons.append("stale (recipe changed): recorded with another config than the "
                               "current spec gives this cell; `reid-bench run` re-runs it")
                continue
        flags.append("")
        reasons.append("")
    df["flag"], df["flag_reason"] = flags, reasons
    return df
