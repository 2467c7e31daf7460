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

from ..errors import ResultsError, SpecError
from ..overrides import compose_variant, describe_variant, spec_parts, variant_parts
from ..results import TIERS, cell_dir, metric_values, read_results, table_csv
from ..spec import Spec, find_specs, load_spec, untrace
from . import claims, ledger, plots, verdicts
from .flags import annotate
from .view import NO_RESULT, Number, OtherResults, RecipeEntry, RowView, TableView


def _long_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Results in long form: row, dataset, seed, status, synthetic, metric, value (the fixed
    metric columns plus the ``extra_metrics`` JSON, e.g. ``rank1@100000``)."""
    recs = []
    for r in df.to_dict("records"):
        for m, x in metric_values(r).items():
            recs.append({"row": r["row"], "dataset": r["dataset"], "seed": r["seed"],
                         "split": r.get("split"),
                         "status": r["status"], "synthetic": bool(r["synthetic"]),
                         "metric": m, "value": x, "flag": r.get("flag") or "",
                         "flags": deviation_flags(r)})
    return pd.DataFrame(recs, columns=["row", "dataset", "seed", "split", "status", "synthetic",
                                       "metric", "value", "flag", "flags"])


def deviation_flags(r: dict) -> tuple[str, ...]:
    """How a results row on real data deviates from the paper's setup: "subset" (``--subset``:
    part of the dataset), "smoke recipe" (``--smoke-recipe``: the shrunk recipe)."""
    out = []
    variant = r.get("variant") if isinstance(r.get("variant"), str) else ""
    if "subset" in variant_parts(variant) or r.get("subset") is True:
        out.append("subset")
    if r.get("tier") == "smoke_recipe":
        out.append("smoke recipe")
    return tuple(out)


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
    if smoke:
        for key, val in _flatten(spec.smoke.recipe).items():
            out.append(RecipeEntry("smoke", key, val, None, None))
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


def _row_views(spec: Spec, df: pd.DataFrame, columns: list[tuple[str, str]],
               deviates: str) -> list[RowView]:
    """Row views of ``spec`` over the results ``df`` (one tier and variant); ``deviates``
    ("variant" or "") flags every number computed off the paper's canonical recipe."""
    from ..results import SHRUNK_TIERS

    # The shrunk tiers run one split per column (no split axis), like --smoke.
    shrunk = bool(not df.empty and df["tier"].iloc[0] in SHRUNK_TIERS)
    long = _long_metrics(df)
    rows: list[RowView] = []
    for r in spec.rows:
        rv = RowView(r)
        sub = df[df["row"] == r.name] if not df.empty else df
        rv.cells = sub.to_dict("records")
        for ds, m in columns:
            num = Number(published=r.published.get(ds, {}).get(m))
            band = verdicts.tolerance(m, spec.tolerances)
            if not r.runnable:
                num.status, num.reason = "quoted", r.source or ""
            elif not rv.in_column(ds):
                num.status, num.reason = "n/a", "row does not run on this column"
            else:
                cells = sub[sub["dataset"] == ds] if not sub.empty else sub
                num.status, num.reason = _status_of(cells)
                ok = long[(long["row"] == r.name) & (long["dataset"] == ds)
                          & (long["metric"] == m) & (long["status"] == "ok")]
                if len(ok):
                    num.values = [float(x) for x in ok["value"]]
                    num.mean = float(ok["value"].mean())
                    num.std = float(ok["value"].std(ddof=1)) if len(ok) > 1 else 0.0
                    num.n = len(ok)
                    num.synthetic = bool(ok["synthetic"].any())
                    flags = set(ok["flag"])
                    num.flag = next((f for f in ("edited", "stale") if f in flags), deviates)
                    num.flags = sorted({f for fl in ok["flags"] for f in fl})
                    why = sorted({str(x) for x in cells.get("flag_reason", []) if x})
                    if why:
                        num.reason = "; ".join(why)
                    _check_complete(num, ok, spec, ds, shrunk)
                elif num.status == "ok":
                    num.status, num.reason = "n/a", f"metric {m} was not computed"
            num.verdict = verdicts.verdict(num.status, num.published, num.mean, band, num.synthetic,
                                    num.flag, num.flags)
            if num.incomplete:
                num.verdict = verdicts.Verdict("incomplete", band, detail=_progress(num, spec, ds),
                                        would_be=verdicts.compare(num.published, num.partial_mean,
                                                           band))
            rv.numbers[(ds, m)] = num
        rv.verdict = verdicts.worst([n.verdict.key for n in rv.numbers.values()])
        rows.append(rv)
    return rows


def _split_assumption_variants(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results without an assumption variant, results with one) of a results frame."""
    from ..variants import variant_choices

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


def table_view(spec: Spec, results_dir: Path, *, with_plots: bool = True) -> TableView:
    """Published vs reproduced for every row × column × metric of ``spec``.

    The main table shows one tier of this spec's own variant (the real results if any, else
    smoke, else shakedown); every other tier and variant of the same CSV (smoke beside real,
    spec copies, --set overrides) is listed beside it, labelled (``TableView.others``)."""
    csv = table_csv(results_dir, spec.paper.id, spec.table.id)
    everything = annotate(spec, results_dir, read_results(csv))
    # Assumption-variant runs (``variant:`` parts) go to the ledger beside the table's numbers;
    # every other deviation (spec copy, --set, subset) is listed under "Other results".
    everything, vdf = _split_assumption_variants(everything)
    own = home = compose_variant(spec_parts(spec))
    # A --subset run of this spec is shown in the main table when the canonical cells have no
    # finished result (its numbers then read "not comparable"); otherwise it is listed apart.
    subset = compose_variant(spec_parts(spec) + ["subset"])
    def finished(variant: str) -> bool:
        return bool(((everything["variant"] == variant) & (everything["status"] == "ok")).any())

    if not everything.empty and not finished(home) and finished(subset):
        home = subset
    mine = everything[everything["variant"] == home] if not everything.empty else everything
    present = set(mine["tier"]) if not mine.empty else set()
    tier = next((t for t in TIERS if t in present), "full")
    df = mine[mine["tier"] == tier] if not mine.empty else mine
    smoke = tier == "smoke"
    columns = [(ds, m) for ds in spec.datasets for m in spec.column_metrics(ds)]
    rows = _row_views(spec, df, columns, "variant" if own else "")
    others = []
    groups = everything.groupby(["tier", "variant"], sort=True) if not everything.empty else []
    for (t, var), sub in groups:
        if (t, var) == (tier, home):
            continue
        labels = ([f"{t} tier: synthetic stand-in data, shrunk recipe — not comparable"]
                  if t == "smoke" else
                  [f"{t} tier: the full recipe for a few steps — not comparable"]
                  if t == "shakedown" else [])
        labels += describe_variant(var, _baseline(spec, t == "smoke"))
        # A subset alone is flagged by its deviation flags ("not comparable"), not as a recipe
        # deviation.
        recipe_dev = [p for p in variant_parts(var) if p != "subset"]
        others.append(OtherResults(t, var, labels,
                                   _row_views(spec, sub, columns,
                                              "variant" if recipe_dev else ""),
                                   columns))
    counts = {k: 0 for k in verdicts.SEVERITY}
    for rv in rows:
        counts[rv.verdict] += 1
    by_name = {rv.name: rv for rv in rows}

    def reproduced(row: str, ds: str, m: str) -> claims.Stat | None:
        n = by_name[row].numbers.get((ds, m))
        if n is None or n.mean is None or n.flag in ("edited", "stale"):
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
                     synthetic=bool(not df.empty and df["synthetic"].astype(bool).any()),
                     smoke=smoke, provenance=prov, recipe=_recipe(spec, smoke),
                     claims=claims.check_claims(spec, reproduced, published),
                     page=f"{spec.paper.id}-{spec.table.id}"
                          + (f"-{spec.spec_hash[:8]}" if own else "") + ".html",
                     csv=str(csv), wall_s=wall, tier=tier, variant=home,
                     deviation=describe_variant(home), others=others,
                     cells=[_clean({k: rec.get(k) for k in CELL_PROVENANCE})
                            for rec in everything.to_dict("records")])
    vdf = vdf[vdf["tier"] == tier] if not vdf.empty else vdf
    view.ledger = ledger.ledger_view(spec, vdf, {(rv.name, ds, m): n for rv in rows
                                            for (ds, m), n in rv.numbers.items()}, _long_metrics)
    if with_plots:
        view.plots = plots.all_plots(view, cell_dir(results_dir, spec.paper.id, spec.table.id))
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
    from ..results import split_of

    col = spec.datasets[ds]
    num.planned = (col.splits if col.splits and not smoke else 1) * spec.seeds
    num.runs = len({(split_of(sp), int(sd)) for sp, sd in zip(ok["split"], ok["seed"],
                                                             strict=True)})
    if num.incomplete:
        num.partial_mean, num.mean, num.std = num.mean, None, None
        num.reason = (f"incomplete: {num.runs} of {num.planned} planned runs (splits × seeds) "
                      f"finished ok; the mean is shown once all have")


def collect(results_dir: Path, spec_paths: list[str] | None = None, *,
            with_plots: bool = True) -> tuple[list[TableView], list[tuple[str, str]]]:
    """Views of every spec (default ``papers/*/table*.yaml``) and ``(file, error)`` for the
    specs or results files that could not be read."""
    views, broken = [], []
    for f in find_specs(spec_paths):
        try:
            views.append(table_view(load_spec(f), results_dir, with_plots=with_plots))
        except (SpecError, ResultsError) as exc:
            broken.append((str(f), str(exc)))
    return views, broken
