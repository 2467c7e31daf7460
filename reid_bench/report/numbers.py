"""Each row's numbers on a page: for every row × column × metric of one tier and variant, the
published number, our mean ± std over seeds (and splits), completeness against the plan, the
flags and the verdict, all from the results rows' ``rowstate.RowState`` (``report.verdicts``).
"""

from __future__ import annotations

import pandas as pd

from ..spec import Spec
from ..store.columns import SHRUNK_TIERS
from ..store.results import metric_values, split_of
from ..table.rowstate import merge_flags, most_withheld
from . import verdicts
from .flags import FLAGS
from .view import NO_RESULT, Number, RowView

# Verdicts of a number that also name its trust flag (``Number.flag``).
TRUST_FLAGS = (*FLAGS, "variant")


def long_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Results in long form: row, dataset, seed, status, synthetic, metric, value, and the
    row's ``state`` (``rowstate.RowState``; the fixed metric columns plus the
    ``extra_metrics`` JSON, e.g. ``rank1@100000``)."""
    recs = []
    for r in df.to_dict("records"):
        for m, x in metric_values(r).items():
            st = r.get("state")
            recs.append({"row": r["row"], "dataset": r["dataset"], "seed": r["seed"],
                         "split": r.get("split"), "status": r["status"],
                         "synthetic": bool(st is not None and ({"synthetic", "shakedown"}
                                                               & set(st.flags))),
                         "metric": m, "value": x, "flag": r.get("flag") or "", "state": st})
    return pd.DataFrame(recs, columns=["row", "dataset", "seed", "split", "status", "synthetic",
                                       "metric", "value", "flag", "state"])


def _status_of(cells: pd.DataFrame) -> tuple[str, str]:
    if cells.empty:
        return "not run", NO_RESULT
    if (cells["status"] == "ok").any():
        return "ok", ""
    last = cells.iloc[-1]
    status = str(last["status"]).replace("not_run", "not run")
    err = last["error"] if isinstance(last["error"], str) else ""
    return status, err or status


def row_views(spec: Spec, df: pd.DataFrame, columns: list[tuple[str, str]]) -> list[RowView]:
    """Row views of ``spec`` over the results ``df`` (one tier and variant, annotated with each
    row's ``state``): every number's flags and verdict come from its rows' states."""
    # The shrunk tiers run one split per column (no split axis), like --smoke.
    shrunk = bool(not df.empty and df["tier"].iloc[0] in SHRUNK_TIERS)
    long = long_metrics(df)
    rows: list[RowView] = []
    for r in spec.rows:
        rv = RowView(r)
        sub = df[df["row"] == r.name] if not df.empty else df
        rv.cells = sub.drop(columns=["state"], errors="ignore").to_dict("records")
        for ds, m in columns:
            num = Number(published=r.published.get(ds, {}).get(m))
            band = verdicts.tolerance(m, spec.tolerances)
            withheld = None
            if not r.runnable:
                num.status, num.reason = "quoted", r.source or ""
            elif not rv.in_column(ds):
                num.status, num.reason = "n/a", "row does not run on this column"
            else:
                cells = sub[sub["dataset"] == ds] if not sub.empty else sub
                num.status, num.reason = _status_of(cells)
                num.recorded = not cells.empty
                ok = long[(long["row"] == r.name) & (long["dataset"] == ds)
                          & (long["metric"] == m) & (long["status"] == "ok")]
                if len(ok):
                    num.values = [float(x) for x in ok["value"]]
                    num.mean = float(ok["value"].mean())
                    num.std = float(ok["value"].std(ddof=1)) if len(ok) > 1 else 0.0
                    num.n = len(ok)
                    states = list(ok["state"])
                    num.flags = merge_flags(states)
                    num.synthetic = bool({"synthetic", "shakedown"} & set(num.flags))
                    withheld = most_withheld(states)
                    num.flag = withheld if withheld in TRUST_FLAGS else ""
                    why = sorted({str(x) for x in cells.get("flag_reason", []) if x})
                    if why:
                        num.reason = "; ".join(why)
                    _check_complete(num, ok, spec, ds, shrunk)
                elif num.status == "ok":
                    num.status, num.reason = "n/a", f"metric {m} was not computed"
            num.verdict = verdicts.verdict(num.status, num.published, num.mean, band,
                                           withheld=withheld)
            if num.incomplete:
                num.verdict = verdicts.Verdict("incomplete", band, detail=_progress(num, spec, ds),
                                        would_be=verdicts.compare(num.published, num.partial_mean,
                                                           band))
            rv.numbers[(ds, m)] = num
        rv.verdict = verdicts.worst([n.verdict.key for n in rv.numbers.values()])
        rows.append(rv)
    return rows


def _progress(num: Number, spec: Spec, ds: str) -> str:
    """"k/n" of an incomplete aggregate in its unit: "5/20 partitions" for a column run over
    partitions with one seed (``run --splits`` runs some on purpose), else "k/n" runs."""
    if spec.datasets[ds].splits and spec.seeds == 1:
        return f"{num.runs}/{num.planned} partitions"
    return f"{num.runs}/{num.planned}"


def _check_complete(num: Number, ok: pd.DataFrame, spec: Spec, ds: str, smoke: bool) -> None:
    """Count the distinct split × seed runs in ``ok`` against the plan (the column's splits,
    none under --smoke, × the spec's seeds); an incomplete aggregate loses its ``mean``."""
    col = spec.datasets[ds]
    num.planned = (col.splits if col.splits and not smoke else 1) * spec.seeds
    num.runs = len({(split_of(sp), int(sd)) for sp, sd in zip(ok["split"], ok["seed"],
                                                             strict=True)})
    if num.incomplete:
        num.partial_mean, num.mean, num.std = num.mean, None, None
        num.reason = (f"incomplete: {num.runs} of {num.planned} planned runs (splits × seeds) "
                      f"finished ok; the mean is shown once all have")
