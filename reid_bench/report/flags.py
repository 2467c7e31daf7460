"""Per-row trust flags of a results table, from each row's ``rowstate.RowState``.

``annotate`` adds to a results table, once, the column ``state`` (the row's ``RowState``: tier,
variant, subset, synthetic, edited, stale, data, precision) that every view renders, and for
the reasons the pages print, ``flag`` (the trust flag: "edited", "stale", "data changed" or
"") with ``flag_reason``. A flagged number is shown with its flag and never counts as
reproduced. A row that disagrees with its cell JSON or stored model
(``reid_bench.run.verify.row_consistency``: a digest recomputed after an edit does not hide it)
is edited too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..run.verify import row_consistency
from ..spec import Spec
from ..table.rowstate import RowStates

FLAGS = ("edited", "stale", "data changed")
STALE_REASON = ("stale (recipe changed): recorded with another config than the current spec "
                "gives this cell; `reid-bench run` re-runs it")
DATA_REASON = ("data changed: recorded on data with another fingerprint than the dataset's "
               "current one; `reid-bench run` re-runs it")


def annotate(spec: Spec, results_dir: Path, df: pd.DataFrame,
             data_fingerprints: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``df`` (a results table as read) with the columns ``state`` (``RowState``), ``flag``
    ("edited", "stale", "data changed" or "") and ``flag_reason``. ``data_fingerprints``
    (dataset name → current fingerprint), when known, checks each row's data."""
    df = df.copy()
    written = [c for c in df.columns if c not in ("state", "flag", "flag_reason")]
    if df.empty:
        df["state"] = pd.Series(dtype=object)
        df["flag"], df["flag_reason"] = pd.Series(dtype=str), pd.Series(dtype=str)
        return df
    states = RowStates(spec, data_fingerprints=data_fingerprints)
    out, flags, reasons = [], [], []
    for rec in df[written].to_dict("records"):
        st = states.state(rec)
        if not st.edited:
            # Its digest, then its records: a row that disagrees with its own cell JSON or
            # stored model (a digest recomputed after an edit) is edited too (reid_bench.run.verify).
            why = row_consistency(rec, results_dir)
            if why:
                st = dataclasses.replace(st, edited=why)
        out.append(st)
        if st.edited:
            flags.append("edited")
            reasons.append(f"edited: {st.edited}")
        elif st.stale:
            flags.append("stale")
            reasons.append(STALE_REASON)
        elif "data changed" in st.flags:
            flags.append("data changed")
            reasons.append(DATA_REASON)
        else:
            flags.append("")
            reasons.append("")
    df["state"], df["flag"], df["flag_reason"] = out, flags, reasons
    return df
