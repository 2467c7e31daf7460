"""Aggregation: a spec and its results CSV -> the report's view model (``report.view``).

``table_view`` joins a spec with its results: for every row × column × metric the published
number, our mean ± std over seeds (and splits), completeness against the plan, the trust and
deviation flags, the verdict (``report.numbers``, ``report.verdicts``); the spec's claims
checked on our numbers (``report.claims``); the recipe with its assumptions
(``report.recipe_listing``) and the fidelity ledger (``report.ledger``); the figures
(``report.plots``); the provenance of every cell; and the results of every other tier and
variant, kept apart from the main numbers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import ResultsError, SpecError
from ..spec import Spec, find_specs, load_spec
from ..spec.consistency import table_consistency
from ..store.columns import SHRUNK_TIERS, TIERS
from ..store.results import cell_dir, read_results, table_csv
from ..table.overrides import compose_variant, describe_variant, spec_parts
from ..table.rowstate import BLOCKS
from . import claims, curves, ledger, numbers, plots, recipe_listing, verdicts
from .flags import FLAGS, annotate
from .view import OtherResults, TableView

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


def _split_assumption_variants(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every other result, the results with an assumption variant) of a results frame: the
    latter are the ledger's variant runs, each beside the canonical numbers of its tier."""
    from ..table.variants import variant_choices

    if df.empty:
        return df, df
    choice = df["variant"].fillna("").astype(str).map(lambda s: bool(variant_choices(s)))
    return df[~choice], df[choice]


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
    rows = numbers.row_views(spec, df, columns)
    others = []
    groups = everything.groupby(["tier", "variant"], sort=False) if not everything.empty else []
    order = {t: i for i, t in enumerate(TIERS)}
    for (t, var), sub in sorted(groups, key=lambda g: (order.get(g[0][0], 9), g[0][1])):
        if (t, var) == ("full", home):
            continue
        labels = [BLOCKS[t]] if t in BLOCKS else []
        labels += describe_variant(var, recipe_listing.baseline(spec, t == "smoke"))
        others.append(OtherResults(t, var, labels, numbers.row_views(spec, sub, columns), columns))
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
                     recipe=recipe_listing.recipe_entries(
                         spec, any(o.tier in SHRUNK_TIERS for o in others)),
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
    view.ledger = ledger.ledger_view(spec, vdf, canonical, numbers.long_metrics)
    if with_plots:
        view.plots = plots.all_plots(view, cell_dir(results_dir, spec.paper.id, spec.table.id))
    curves.add_curves(view, cell_dir(results_dir, spec.paper.id, spec.table.id),
                      with_svg=with_plots)
    return view


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
