"""``reid-bench compare RESULTS_A RESULTS_B``: two results folders side by side.

For two runs of the suite (two GPUs, two commits, two library versions) every number both
folders have — per paper, table, row, dataset column, tier, variant and metric — as the mean ±
sample std over its seeds (and splits) in each folder, with the delta B − A. Only ``ok`` cells
count. Every number carries the flags of its rows (``reid_bench.table.rowstate``: synthetic,
shakedown, smoke recipe, subset, variant, edited, stale, data changed, precision) from either
side; stale is checked only for tables whose spec is given (``specs``). Each side's code
versions and devices head the output, so what differs between the two is in view.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.textable import text_table
from ..table.plan import cell_label
from ..table.rowstate import RowStates, merge_flags_text
from .results import all_results, metric_values

GROUP = ["paper", "table", "row", "dataset", "tier", "variant", "metric"]


Specs = Mapping[tuple[str, str], Any]  # (paper id, table id) → its Spec


def long_results(results_dir: Path, specs: Specs | None = None) -> pd.DataFrame:
    """Every ok metric value of ``results_dir`` in long form: GROUP columns plus ``seed``,
    ``split``, ``value``, ``edited`` (bool) and ``flags`` (the row's ``RowState.flags``)."""
    recs = []
    states: dict[tuple[str, str], RowStates] = {}
    for _, df in all_results(Path(results_dir)):
        for r in df.to_dict("records"):
            if r.get("status") != "ok":
                continue
            key = (str(r["paper"]), str(r["table"]))
            if key not in states:
                states[key] = RowStates((specs or {}).get(key))
            flags = states[key].state(r).flags
            edited = "edited" in flags
            for m, x in metric_values(r).items():
                recs.append({"paper": r["paper"], "table": r["table"], "row": r["row"],
                             "dataset": r["dataset"], "tier": r["tier"],
                             "variant": r.get("variant") or "", "metric": m,
                             "seed": r["seed"], "split": r.get("split"), "value": x,
                             "edited": edited, "flags": flags})
    return pd.DataFrame(recs, columns=[*GROUP, "seed", "split", "value", "edited", "flags"])


def _spread(long: pd.DataFrame) -> pd.DataFrame:
    g = long.groupby(GROUP, sort=True, dropna=False)
    out = g["value"].agg(mean="mean", std=lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0,
                         n="count")
    out["edited"] = g["edited"].any()
    out["flags"] = g["flags"].agg(lambda fl: ", ".join(merge_flags_text(f for x in fl
                                                                        for f in x)))
    return out


def compare(a: Path, b: Path, specs: Specs | None = None) -> pd.DataFrame:
    """One line per number present in either folder: ``mean_a``, ``std_a``, ``n_a`` (seeds ×
    splits), the same for B, ``delta`` = mean_b − mean_a (NaN when one side lacks it),
    ``edited`` (either side has an edited row) and ``flags_a`` / ``flags_b`` (each side's
    flags, comma-joined; ``specs`` as for ``long_results``)."""
    sa, sb = _spread(long_results(a, specs)), _spread(long_results(b, specs))
    df = sa.add_suffix("_a").join(sb.add_suffix("_b"), how="outer")
    df["delta"] = df["mean_b"] - df["mean_a"]
    df["edited"] = df["edited_a"].fillna(False).astype(bool) | \
        df["edited_b"].fillna(False).astype(bool)
    df = df.drop(columns=["edited_a", "edited_b"]).reset_index()
    for c in ("n_a", "n_b"):
        df[c] = df[c].fillna(0).astype(int)
    for c in ("flags_a", "flags_b"):
        df[c] = df[c].fillna("")
    return df


def provenance_summary(results_dir: Path) -> dict[str, list[str]]:
    """Distinct commits (with a ``+dirty`` mark), devices and torch versions of a folder."""
    out: dict[str, set[str]] = {"commits": set(), "devices": set(), "torch": set()}
    for _, df in all_results(Path(results_dir)):
        for r in df.to_dict("records"):
            if isinstance(r.get("git_commit"), str):
                out["commits"].add(r["git_commit"][:10] + ("+dirty" if r.get("git_dirty") is True
                                                           else ""))
            if isinstance(r.get("device_name"), str):
                out["devices"].add(r["device_name"])
            if isinstance(r.get("torch"), str):
                out["torch"].add(r["torch"])
    return {k: sorted(v) for k, v in out.items()}


def _pm(mean: float, std: float, n: int) -> str:
    if n == 0 or mean != mean:
        return "–"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if n > 1 else "") + f" (n={n})"


def format_text(df: pd.DataFrame, a: Path, b: Path) -> str:
    """A plain-text table, grouped by paper/table, with each side's provenance on top."""
    lines = []
    for tag, path in (("A", a), ("B", b)):
        p = provenance_summary(path)
        lines.append(f"{tag}: {path} — commits {', '.join(p['commits']) or '–'}; devices "
                     f"{', '.join(p['devices']) or '–'}; torch {', '.join(p['torch']) or '–'}")
    if df.empty:
        return "\n".join(lines + ["no ok results in either folder"]) + "\n"
    lines.append("mean ± std over seeds (n = seeds × splits); Δ = B − A; metrics in percent")
    for (paper, table), sub in df.groupby(["paper", "table"], sort=True):
        lines.append(f"\n{paper}/{table}")
        body = [[_label(r), _pm(r["mean_a"], r["std_a"], r["n_a"]),
                 _pm(r["mean_b"], r["std_b"], r["n_b"]),
                 "–" if r["delta"] != r["delta"] else f"{r['delta']:+.2f}",
                 _flags(r)] for r in sub.to_dict("records")]
        lines += text_table(["row × dataset [tier variant] metric", "A", "B", "Δ", "flags"],
                            body,
                            right={1, 2, 3}, indent="  ", rule=False)
    return "\n".join(lines) + "\n"


def _flags(r: dict) -> str:
    """Each side's flags ("A: subset; B: edited, stale"; one list when both sides agree)."""
    fa, fb = r.get("flags_a") or "", r.get("flags_b") or ""
    if fa == fb:
        return fa
    return "; ".join(f"{tag}: {f}" for tag, f in (("A", fa), ("B", fb)) if f)


def _label(r: dict) -> str:
    extra = "" if r["tier"] == "full" and not r["variant"] else \
        f" [{r['tier']}{' ' + r['variant'] if r['variant'] else ''}]"
    return f"{cell_label(r['row'], r['dataset'])}{extra} {r['metric']}"
