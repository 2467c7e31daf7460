"""Aggregation: a spec and its results CSV -> the report's view model (``report.view``).

``table_view`` joins a spec with its results: for every row × column × metric the published
number, our mean ± std over seeds (and splits), completeness against the plan, the trust and
deviation flags, the verdict (``report.verdicts``); the spec's claims checked on our numbers
(``report.claims``); the recipe with its assumptions and the fidelity ledger
(``report.ledger``); the figures (``report.plots``); the provenance of every cell; and the
results of every other tier and variant, kept apart from the main numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import ResultsError, SpecError
from ..spec import Spec, find_specs, load_spec, untrace
from ..spec.consistency import table_consistency
from ..store.results import SHRUNK_TIERS, TIERS, cell_dir, metric_values, read_results, table_csv
from ..table.overrides import compose_variant, describe_variant, spec_parts
from ..table.rowstate import BLOCKS, merge_flags, most_withheld
from . import claims, curves, ledger, plots, verdicts
from .flags import FLAGS, annotate
from .view import NO_RESULT, Number, OtherResults, RecipeEntry, RowView, TableView


def _long_metrics(df: pd.DataFrame) -> pd.DataFrame:
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


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): tree}


def _recipe(spec: Spec, smoke: bool) -> list[RecipeEntry]:
    """The table recipe, each row's overrides, and (for smoke runs) the smoke overrides."""
    out: list[RecipeEntry] = []
    values, prov, _ = untrace(spec.recipe)
    for key, val in _flatten(values).items():
        p = prov.get(key, {})
        out.append(RecipeEntry("table", key, val, p.get("source"), p.get("assumed")))
    for r in spec.rows:
        if not r.runnable or not r.recipe:
            continue
        values, prov, _ = untrace(r.recipe)
        for key, val in _flatten(values).items():
            p = prov.get(key, {})
            out.append(RecipeEntry(r.name, key, val, p.get("source"), p.get("assumed")))
    out += _defaults(spec)
    if smoke:
        for key, val in _flatten(spec.smoke.recipe).items():
            out.append(RecipeEntry("smoke", key, val, None, None))
    return out


def _defaults(spec: Spec) -> list[RecipeEntry]:
    """The values the spec leaves to its methods' Recipe defaults (``spec.defaults``), each
    ``assumed: default``: once for the table when every runnable row runs the same one."""
    from ..spec.defaults import DEFAULT_REASON, untraced_leaves

    runnable = {r.name for r in spec.rows if r.runnable and r.method}
    rows: dict[tuple, list[str]] = {}
    values: dict[tuple, Any] = {}
    for u in untraced_leaves(spec):
        rows.setdefault((u.key, repr(u.value)), []).append(u.row)
        values[(u.key, repr(u.value))] = u.value
    out: list[RecipeEntry] = []
    for (key, rv), names in rows.items():
        scopes = ["table"] if set(names) == runnable else names
        out += [RecipeEntry(s, key, values[(key, rv)], None, DEFAULT_REASON) for s in scopes]
    return out


# Per-cell provenance in the JSON report (and the table view's ``cells``).
CELL_PROVENANCE = ["row", "dataset", "split", "seed", "tier", "variant", "overrides", "status",
                   "flag", "flag_reason", "smoke", "synthetic", "git_commit", "git_dirty",
                   "spec_hash", "config_hash", "train_hash", "dataset_fingerprint", "dataset_name",
                   "device", "device_name", "hostname", "accel", "torch", "torchvision", "timm",
                   "numpy", "python", "started_at", "finished_at", "wall_s", "cell_id",
                   "row_digest", "precision", "channels_last", "pretrained", "step_s",
                   "peak_mem_mb", "weights_source", "weights_sha256", "trained_accel",
                   "trained_world_size", "trained_commit", "trained_at"]


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA
                else v) for k, v in rec.items()}


def _row_views(spec: Spec, df: pd.DataFrame, columns: list[tuple[str, str]]) -> list[RowView]:
    """Row views of ``spec`` over the results ``df`` (one tier and variant, annotated with each
    row's ``state``): every number's flags and verdict come from its rows' states."""
    # The shrunk tiers run one split per column (no split axis), like --smoke.
    shrunk = bool(not df.empty and df["tier"].iloc[0] in SHRUNK_TIERS)
    long = _long_metrics(df)
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


# Verdicts of a number that also name its trust flag (``Number.flag``).
TRUST_FLAGS = (*FLAGS, "variant")


def _split_assumption_variants(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every other result, the results with an assumption variant) of a results frame: the
    latter are the ledger's variant runs, each beside the canonical numbers of its tier."""
    from ..table.variants import variant_choices

    if df.empty:
        return df, df
    choice = df["variant"].fillna("").astype(str).map(lambda s: bool(variant_choices(s)))
    return df[~choice], df[choice]


def _baseline(spec: Spec, smoke: bool) -> dict[str, Any]:
    """Dotted key → value of the spec's resolved recipe (its first runnable row), the values
    --set overrides replace."""
    from ..spec import resolved_recipe

    row = next((r for r in spec.rows if r.runnable), None)
    return {} if row is None else _flatten(resolved_recipe(spec, row, smoke=smoke)[0])


def table_view(spec: Spec, results_dir: Path, *, with_plots: bool = True,
               data_fingerprints: dict[str, str] | None = None) -> TableView:
    """Published vs reproduced for every row × column × metric of ``spec``.

    The headline table shows the full tier of this spec's own variant only (the canonical
    spec's, or a spec copy's ``spec:<hash>``): never smoke, shakedown, smoke-recipe, subset or
    another variant's numbers, which are each listed beside it as a labelled block
    (``TableView.others``); assumption-variant runs go to the ledger. With
    no such results the headline reads "not run". Every flag and verdict comes from the rows'
    ``rowstate.RowState`` (``data_fingerprints``: dataset name → current fingerprint, when
    the caller knows it; else the data is "not checked")."""
    csv = table_csv(results_dir, spec.paper.id, spec.table.id)
    everything = annotate(spec, results_dir, read_results(csv), data_fingerprints)
    home = compose_variant(spec_parts(spec))
    # Assumption-variant runs go to the ledger beside the canonical numbers of their tier;
    # every other deviation (spec copy, --set, subset) is listed under "Other results".
    everything, vdf = _split_assumption_variants(everything)
    if everything.empty:
        df = everything
    else:
        df = everything[(everything["variant"] == home) & (everything["tier"] == "full")]
    columns = [(ds, m) for ds in spec.datasets for m in spec.column_metrics(ds)]
    rows = _row_views(spec, df, columns)
    others = []
    groups = everything.groupby(["tier", "variant"], sort=False) if not everything.empty else []
    order = {t: i for i, t in enumerate(TIERS)}
    for (t, var), sub in sorted(groups, key=lambda g: (order.get(g[0][0], 9), g[0][1])):
        if (t, var) == ("full", home):
            continue
        labels = [BLOCKS[t]] if t in BLOCKS else []
        labels += describe_variant(var, _baseline(spec, t == "smoke"))
        others.append(OtherResults(t, var, labels, _row_views(spec, sub, columns), columns))
    counts = {k: 0 for k in verdicts.SEVERITY}
    for rv in rows:
        counts[rv.verdict] += 1
    by_name = {rv.name: rv for rv in rows}

    def reproduced(row: str, ds: str, m: str) -> claims.Stat | None:
        n = by_name[row].numbers.get((ds, m))
        if n is None or n.mean is None or n.flag in FLAGS:
            return None  # an edited or stale number is no evidence for or against a claim
        return claims.Stat(n.mean, n.std or 0.0, n.n, n.synthetic)

    def published(row: str, ds: str, m: str) -> float | None:
        n = by_name[row].numbers.get((ds, m))
        return None if n is None else n.published

    prov_cols = ["row", "dataset", "split", "seed", "status", "smoke", "synthetic", "git_commit",
                 "git_dirty", "spec_hash", "config_hash", "dataset_fingerprint", "device_name",
                 "torch", "torchvision", "timm", "numpy", "python", "wall_s", "finished_at"]
    prov = [_clean(rec) for rec in (df[prov_cols].to_dict("records") if not df.empty else [])]
    wall = float(pd.to_numeric(df["wall_s"], errors="coerce").fillna(0).sum()) if len(df) else 0
    view = TableView(spec, rows, columns, counts,
                     synthetic=any(n.synthetic for rv in rows for n in rv.numbers.values()),
                     smoke=False, provenance=prov,
                     recipe=_recipe(spec, any(o.tier in SHRUNK_TIERS for o in others)),
                     claims=claims.check_claims(spec, reproduced, published),
                     page=f"{spec.paper.id}-{spec.table.id}"
                          + (f"-{spec.spec_hash[:8]}" if home else "") + ".html",
                     csv=str(csv), wall_s=wall, tier="full", variant=home,
                     deviation=describe_variant(home), others=others,
                     cells=[_clean({k: rec.get(k) for k in CELL_PROVENANCE})
                            for part in (everything, vdf) for rec in part.to_dict("records")])
    view.consistency = table_consistency(spec)
    view.data_checked = data_fingerprints is not None
    # Each variant run beside the canonical numbers of its own tier.
    canonical = {("full", rv.name, ds, m): n for rv in rows for (ds, m), n in rv.numbers.items()}
    for o in others:
        if o.variant == home:
            canonical.update({(o.tier, rv.name, ds, m): n for rv in o.rows
                              for (ds, m), n in rv.numbers.items()})
    view.ledger = ledger.ledger_view(spec, vdf, canonical, _long_metrics)
    if with_plots:
        view.plots = plots.all_plots(view, cell_dir(results_dir, spec.paper.id, spec.table.id))
    curves.add_curves(view, cell_dir(results_dir, spec.paper.id, spec.table.id),
                      with_svg=with_plots)
    return view


def _progress(num: Number, spec: Spec, ds: str) -> str:
    """"k/n" of an incomplete aggregate in its unit: "5/20 partitions" for a column run over
    partitions with one seed (``run --splits`` runs some on purpose), else "k/n" runs."""
    if spec.datasets[ds].splits and spec.seeds == 1:
        return f"{num.runs}/{num.planned} partitions"
    return f"{num.runs}/{num.planned}"


def _check_complete(num: Number, ok: pd.DataFrame, spec: Spec, ds: str, smoke: bool) -> None:
    """Count the distinct split × seed runs in ``ok`` against the plan (the column's splits,
    none under --smoke, × the spec's seeds); an incomplete aggregate loses its ``mean``."""
    from ..store.results import split_of

    col = spec.datasets[ds]
    num.planned = (col.splits if col.splits and not smoke else 1) * spec.seeds
    num.runs = len({(split_of(sp), int(sd)) for sp, sd in zip(ok["split"], ok["seed"],
                                                             strict=True)})
    if num.incomplete:
        num.partial_mean, num.mean, num.std = num.mean, None, None
        num.reason = (f"incomplete: {num.runs} of {num.planned} planned runs (splits × seeds) "
                      f"finished ok; the mean is shown once all have")


def collect(results_dir: Path, spec_paths: list[str] | None = None, *,
            with_plots: bool = True, data_fingerprints: dict[str, str] | None = None,
            ) -> tuple[list[TableView], list[tuple[str, str]]]:
    """Views of every spec (default ``papers/*/table*.yaml``) and ``(file, error)`` for the
    specs or results files that could not be read (``data_fingerprints``: ``table_view``)."""
    views, broken = [], []
    for f in find_specs(spec_paths):
        try:
            views.append(table_view(load_spec(f), results_dir, with_plots=with_plots,
                                    data_fingerprints=data_fingerprints))
        except (SpecError, ResultsError) as exc:
            broken.append((str(f), str(exc)))
    return views, broken
