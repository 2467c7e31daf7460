"""Assemble published and reproduced numbers per table; render HTML, markdown or JSON.

``table_view`` joins a spec with its results CSV: for every row × column × metric the published
number, our mean ± std over seeds, the delta and a verdict (reid_bench.report.verdicts); the
spec's claims checked on our numbers (reid_bench.report.claims); the figures
(reid_bench.report.plots); the recipe with its assumptions; and the provenance of every cell.

``build_report`` writes, into ``out``:

- ``html`` (default): ``index.html`` (every table: row verdict counts, claims held) and one
  ``<paper>-<table>.html`` per table. Static files only: they open from disk, no server, no
  network, figures inline as SVG.
- ``markdown``: ``report.md``, every table as a markdown table with verdict symbols.
- ``json``: ``summary.json``, every number, verdict and claim for scripts.
- ``latex``: ``report.tex``, one booktabs table per paper table (``reid_bench.report.latex``).

Anything computed on synthetic data is labelled so everywhere: its verdict reads
"synthetic: not comparable" and its pages carry a banner.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from ..errors import ResultsError, SpecError
from ..overrides import compose_variant, describe_variant, spec_parts, variant_parts
from ..results import TIERS, cell_dir, metric_values, read_results, table_csv
from ..spec import Row, Spec, find_specs, load_spec, untrace
from . import claims as C
from . import ledger as L
from . import plots as P
from . import verdicts as V
from .flags import annotate

TEMPLATES = Path(__file__).parent / "templates"
FORMATS = ("html", "markdown", "json", "latex")
NO_RESULT = "no result yet: run `reid-bench run` on this spec"

AP_DEFINITIONS = {
    "standard": "AP = mean of the precision at the rank of each true match (area under the "
                "non-interpolated precision-recall curve), as torchreid / fast-reid compute it",
    "market_matlab": "AP as the Market-1501 authors' MATLAB code computes it: trapezoid rule "
                     "between consecutive recall points (precision averaged before and at each "
                     "true match)",
}


@dataclass
class Number:
    """One published number and what we reproduced for it."""

    published: float | None
    mean: float | None = None
    std: float | None = None
    n: int = 0
    values: list[float] = field(default_factory=list)
    status: str = "not run"  # ok | failed | diverged | not run | quoted | n/a
    reason: str = ""
    synthetic: bool = False
    verdict: V.Verdict = V.Verdict("not run")
    flag: str = ""  # "edited" | "stale" | "variant" | "" (report.flags; never reproduced)
    flags: list[str] = field(default_factory=list)  # deviations: "subset", "smoke recipe"
    # Runs (distinct split × seed) planned for this number and finished ok. With fewer than
    # planned, ``mean`` stays None and the partial mean goes to ``partial_mean``.
    planned: int = 1
    runs: int = 0
    partial_mean: float | None = None

    @property
    def incomplete(self) -> bool:
        return 0 < self.runs < self.planned

    @property
    def delta(self) -> float | None:
        if self.published is None or self.mean is None:
            return None
        return self.mean - self.published


@dataclass
class RowView:
    row: Row
    numbers: dict[tuple[str, str], Number] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = "not run"

    name = property(lambda self: self.row.name)
    runnable = property(lambda self: self.row.runnable)
    method = property(lambda self: self.row.method)
    source = property(lambda self: self.row.source)
    note = property(lambda self: self.row.note)

    def in_column(self, ds: str) -> bool:
        return self.row.datasets is None or ds in self.row.datasets

    @property
    def precisions(self) -> list[str]:
        """Precisions of this row's cells that differ from the papers' (fp32), e.g. bf16."""
        from ..accel import PAPER_PRECISION

        return sorted({str(c["precision"]) for c in self.cells
                       if isinstance(c.get("precision"), str)
                       and c["precision"] != PAPER_PRECISION})

    @property
    def reasons(self) -> list[str]:
        """Distinct not-run reasons and failure messages of this row's numbers."""
        out: list[str] = []
        for n in self.numbers.values():
            shown = n.status not in ("ok", "quoted", "n/a") or n.flag in ("edited", "stale")
            if n.reason and shown and n.reason not in out:
                out.append(n.reason)
        return out

    @property
    def shown_reasons(self) -> list[str]:
        """``reasons`` worth a line under the row (not the generic "no result yet")."""
        return [r for r in self.reasons if not r.startswith(NO_RESULT)]


@dataclass
class RecipeEntry:
    scope: str  # "table" or a row name or "smoke"
    key: str
    value: Any
    source: str | None
    assumed: str | None


@dataclass
class OtherResults:
    """Results of the table in another tier (smoke, shakedown) or variant (spec copy, --set):
    shown beside the main table, labelled, never mixed into its numbers."""

    tier: str
    variant: str
    labels: list[str]
    rows: list[RowView]
    columns: list[tuple[str, str]]

    @property
    def title(self) -> str:
        return f"{self.tier}" + (f" · {self.variant}" if self.variant else "")


@dataclass
class TableView:
    spec: Spec
    rows: list[RowView]
    columns: list[tuple[str, str]]  # (dataset column, metric)
    counts: dict[str, int]
    synthetic: bool
    smoke: bool
    provenance: list[dict[str, Any]]
    recipe: list[RecipeEntry]
    claims: list[C.ClaimResult]
    page: str
    csv: str
    plots: list[P.Plot] = field(default_factory=list)
    wall_s: float = 0.0
    # The results shown in the main table: this tier of this variant ("" = canonical spec;
    # a spec copy's own ``spec:<hash>``). ``deviation`` describes a non-canonical variant.
    tier: str = "full"
    variant: str = ""
    deviation: list[str] = field(default_factory=list)
    # Every other (tier, variant) of the table's results, shown beside the main table.
    others: list[OtherResults] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)  # provenance of every row

    @property
    def flagged(self) -> dict[str, int]:
        """How many results rows are flagged edited / stale."""
        out = {"edited": 0, "stale": 0}
        for c in self.cells:
            if c.get("flag") in out:
                out[c["flag"]] += 1
        return out
    ledger: L.Ledger | None = None  # assumptions, stated/assumed counts, variant runs

    @property
    def flags(self) -> list[str]:
        """Deviation flags of any reproduced number on this page ("subset", "smoke recipe")."""
        return sorted({f for rv in self.rows for n in rv.numbers.values() for f in n.flags})

    @property
    def assumptions(self) -> list[RecipeEntry]:
        return [e for e in self.recipe if e.assumed]

    @property
    def claims_held(self) -> int:
        return sum(1 for c in self.claims if c.status == C.HELD and not c.synthetic)

    @property
    def mixed_provenance(self) -> list[str]:
        """Warnings when the numbers of this table do not share one provenance: more than one
        code version, uncommitted changes, more than one dataset fingerprint per column, more
        than one torch version or device."""
        cells = [p for p in self.provenance if p.get("status") == "ok"
                 and p.get("tier", self.tier) == self.tier
                 and (p.get("variant") or "") == self.variant]
        out = []

        def distinct(key: str, among=cells) -> list[str]:
            return sorted({str(p.get(key)) for p in among if p.get(key) not in (None, "")})

        if len(c := distinct("git_commit")) > 1:
            out.append(f"{len(c)} code versions (commits {', '.join(x[:8] for x in c)})")
        if any(str(p.get("git_dirty")).lower() == "true" for p in cells):
            out.append("some cells ran with uncommitted changes (git_dirty)")
        for ds in self.spec.datasets:
            f = distinct("dataset_fingerprint", [p for p in cells if p.get("dataset") == ds])
            if len(f) > 1:
                out.append(f"column {ds!r}: {len(f)} different dataset fingerprints "
                           f"({', '.join(f)})")
        for key, what in (("torch", "torch versions"), ("device_name", "devices")):
            if len(v := distinct(key)) > 1:
                out.append(f"{len(v)} {what} ({', '.join(v)})")
        return out

    def protocol(self, ds: str) -> str:
        from ..eval import PROTOCOLS

        p = PROTOCOLS.get(self.spec.datasets[ds].eval.protocol)
        return p.description if p else ""


# --------------------------------------------------------------------------------------------
# Building the view


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
    if "subset" in variant.split(";") or r.get("subset") is True:
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
    long = _long_metrics(df) if not df.empty else _long_metrics(pd.DataFrame())
    rows: list[RowView] = []
    for r in spec.rows:
        rv = RowView(r)
        sub = df[df["row"] == r.name] if not df.empty else df
        rv.cells = sub.to_dict("records")
        for ds, m in columns:
            num = Number(published=r.published.get(ds, {}).get(m))
            band = V.tolerance(m, spec.tolerances)
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
            num.verdict = V.verdict(num.status, num.published, num.mean, band, num.synthetic,
                                    num.flag, num.flags)
            if num.incomplete:
                num.verdict = V.Verdict("incomplete", band, detail=f"{num.runs}/{num.planned}",
                                        would_be=V.compare(num.published, num.partial_mean,
                                                           band))
            rv.numbers[(ds, m)] = num
        rv.verdict = V.worst([n.verdict.key for n in rv.numbers.values()])
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
    counts = {k: 0 for k in V.SEVERITY}
    for rv in rows:
        counts[rv.verdict] += 1
    by_name = {rv.name: rv for rv in rows}

    def reproduced(row: str, ds: str, m: str) -> C.Stat | None:
        n = by_name[row].numbers.get((ds, m))
        if n is None or n.mean is None or n.flag in ("edited", "stale"):
            return None  # an edited or stale number is no evidence for or against a claim
        return C.Stat(n.mean, n.std or 0.0, n.n, n.synthetic)

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
                     claims=C.check_claims(spec, reproduced, published),
                     page=f"{spec.paper.id}-{spec.table.id}"
                          + (f"-{spec.spec_hash[:8]}" if own else "") + ".html",
                     csv=str(csv), wall_s=wall, tier=tier, variant=home,
                     deviation=describe_variant(home), others=others,
                     cells=[_clean({k: rec.get(k) for k in CELL_PROVENANCE})
                            for rec in everything.to_dict("records")])
    vdf = vdf[vdf["tier"] == tier] if not vdf.empty else vdf
    view.ledger = L.ledger_view(spec, vdf, {(rv.name, ds, m): n for rv in rows
                                            for (ds, m), n in rv.numbers.items()}, _long_metrics)
    if with_plots:
        view.plots = P.all_plots(view, cell_dir(results_dir, spec.paper.id, spec.table.id))
    return view


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


# --------------------------------------------------------------------------------------------
# Rendering


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _signed(x: float | None) -> str:
    return "–" if x is None else f"{x:+.2f}".replace("-", "−")


def _ours(n: Number) -> str:
    """"mean ± std (n seeds)" as shown in every format."""
    if n.incomplete:
        return f"incomplete {n.runs}/{n.planned}"
    if n.mean is None:
        return "–"
    return _fmt(n.mean) + (f" ± {_fmt(n.std)}" if n.n > 1 else "")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    env.filters["signed"] = _signed
    env.filters["ours"] = _ours
    env.filters["svg"] = lambda s: Markup(s)
    env.filters["short"] = lambda s: s[:10] if isinstance(s, str) else ("" if s is None else s)
    env.globals["LABELS"] = V.LABELS
    env.globals["SYMBOLS"] = V.SYMBOLS
    env.globals["AP_DEFINITIONS"] = AP_DEFINITIONS
    env.globals["DEFAULT_TOLERANCES"] = V.DEFAULT_TOLERANCES
    env.globals["tolerance"] = V.tolerance
    env.globals["Z"] = C.Z
    env.globals["NO_RESULT"] = NO_RESULT
    env.globals["pubfmt"] = L.fmt_published
    env.globals["BLOCKS"] = L.BLOCKS
    env.globals["flags_text"] = flags_text
    return env


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


def build_report(results_dir: Path, out: Path, spec_paths: list[str] | None = None,
                 fmt: str = "html") -> Path:
    """Render the report for every spec into ``out`` in ``fmt`` (html | markdown | json);
    return the main file written (index.html, report.md or summary.json)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; allowed: {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    views, broken = collect(Path(results_dir), spec_paths, with_plots=fmt == "html")
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if fmt == "json":
        path = out / "summary.json"
        _write(path, json.dumps(summary(views, broken, stamp), indent=1, default=str))
        return path
    if fmt == "latex":
        from .latex import render_latex

        path = out / "report.tex"
        _write(path, render_latex(views, broken, stamp))
        return path
    if fmt == "markdown":
        path = out / "report.md"
        _write(path, markdown(views, broken, stamp))
        return path
    env = _env()
    for v in views:
        _write(out / v.page, env.get_template("table.html.j2").render(v=v, generated=stamp))
    index = out / "index.html"
    _write(index, env.get_template("index.html.j2").render(views=views, broken=broken,
                                                           generated=stamp))
    return index


def summary(views: list[TableView], broken: list[tuple[str, str]], stamp: str) -> dict:
    """The JSON summary: every number with its verdict, every claim with its comparisons."""
    tables = []
    for v in views:
        nums = []
        for rv in v.rows:
            for (ds, m), n in rv.numbers.items():
                nums.append({"row": rv.name, "dataset": ds, "metric": m,
                             "published": n.published, "mean": n.mean, "std": n.std, "n": n.n,
                             "values": n.values, "delta": n.delta, "band": n.verdict.band,
                             "verdict": n.verdict.key, "would_be": n.verdict.would_be,
                             "status": n.status, "reason": n.reason or None,
                             "synthetic": n.synthetic, "flag": n.flag or None, "flags": n.flags,
                             "planned": n.planned, "runs": n.runs,
                             "partial_mean": n.partial_mean})
        tables.append({
            "paper": v.spec.paper.id, "table": v.spec.table.id, "caption": v.spec.table.caption,
            "spec": v.spec.path, "results_csv": v.csv, "page": v.page,
            "synthetic": v.synthetic, "smoke": v.smoke, "flags": v.flags,
            "row_verdicts": v.counts,
            "rows": {rv.name: rv.verdict for rv in v.rows},
            "numbers": nums,
            "claims": [{"kind": c.claim.kind, "statement": c.statement, "text": c.claim.text,
                        "source": c.claim.source, "status": c.status,
                        "published_status": c.published_status, "synthetic": c.synthetic,
                        "comparisons": [vars(x) for x in c.comparisons]} for c in v.claims],
            "assumptions": [vars(e) for e in v.assumptions],
            "tier": v.tier, "variant": v.variant, "deviation": v.deviation,
            "flagged": v.flagged,
            "other_results": [{"tier": o.tier, "variant": o.variant, "labels": o.labels,
                               "numbers": [_json_number(rv.name, ds, m, n) for rv in o.rows
                                           for (ds, m), n in rv.numbers.items()
                                           if n.mean is not None or n.status not in
                                           ("not run", "quoted", "n/a")]}
                              for o in v.others],
            # Provenance of every results row (all tiers and variants): commit, dirty, config
            # hash, seed, versions, device, timestamps, tier, variant, trust flag.
            "cells": v.cells,
            "ledger": {"counts": v.ledger.counts,
                       "assumptions": [vars(a) for a in v.ledger.assumptions],
                       "variants": [{"variant": r.variant, "synthetic": r.synthetic,
                                     "numbers": [{**vars(x), "move": x.move,
                                                  "main_verdict": x.main_verdict.key,
                                                  "verdict": x.verdict.key}
                                                 for x in r.numbers]}
                                    for r in v.ledger.variants]} if v.ledger else None,
        })
    return {"generated": stamp, "tolerances_default": V.DEFAULT_TOLERANCES,
            "claims_z": C.Z, "tables": tables,
            "errors": [{"file": f, "error": e} for f, e in broken]}


def _json_number(row: str, ds: str, m: str, n: Number) -> dict[str, Any]:
    return {"row": row, "dataset": ds, "metric": m, "published": n.published, "mean": n.mean,
            "std": n.std, "n": n.n, "values": n.values, "delta": n.delta,
            "verdict": n.verdict.key, "would_be": n.verdict.would_be, "status": n.status,
            "reason": n.reason or None, "synthetic": n.synthetic, "flag": n.flag or None,
            "flags": n.flags}


FLAG_TEXT = {
    "subset": "computed with --subset on a deliberate subset of the real dataset",
    "smoke recipe": "computed with --smoke-recipe: the spec's shrunk recipe on the real data",
}


def flags_text(flags: list[str]) -> str:
    """Plain sentences saying what the deviation ``flags`` mean for the numbers."""
    return ("Numbers marked " + " + ".join(flags) + " were "
            + "; ".join(FLAG_TEXT.get(f, f) for f in flags)
            + ". They test the setup on your data and are not comparable to the paper's: "
              "their verdicts read \"not comparable\".")


def _md_cell(n: Number, digits: int | None = 2) -> str:
    pub = L.fmt_published(n.published, digits)  # as the paper prints it
    if n.status == "quoted":
        return pub
    if n.mean is None:
        return f"{pub} / {V.SYMBOLS[n.verdict.key]} {n.verdict.label}"
    flags = f" [{', '.join(n.flags)}]" if n.flags else ""
    return (f"{pub} / {_ours(n)}{flags} ({_signed(n.delta)}) "
            f"{V.SYMBOLS[n.verdict.key]} {n.verdict.label}")


def markdown(views: list[TableView], broken: list[tuple[str, str]], stamp: str) -> str:
    """Every table as markdown: "published / ours ± std (Δ) verdict" per cell, then claims."""
    legend = ", ".join(f"{V.SYMBOLS[k]} {V.LABELS[k]}" for k in V.SEVERITY)
    out = [f"# reid-bench: published vs reproduced\n\nGenerated {stamp}. Metrics in percent. "
           f"Cells read `published / ours ± std over seeds and splits (Δ) verdict`. Legend: {legend}.\n"]
    for v in views:
        s = v.spec
        out.append(f"\n## {s.paper.title} ({s.paper.year}) — {s.table.id}\n\n{s.table.caption}\n")
        if v.tier == "shakedown":
            out.append("\n> **SHAKEDOWN RESULTS** — `--shakedown`: the full recipe for a few "
                       "steps per stage on the synthetic stand-in. They prove the recipe runs; "
                       "they are **not reproductions** and not comparable to the paper.\n")
        elif v.synthetic:
            out.append("\n> **SYNTHETIC SMOKE RESULTS** — computed with `--smoke` on the "
                       "synthetic stand-in dataset with shrunk networks. They test the pipeline "
                       "and are **not comparable** to the paper's numbers.\n")
        for line in v.deviation:
            out.append(f"\n> **NOT THE CANONICAL SPEC** — {line}.\n")
        if any(v.flagged.values()):
            out.append(f"\n> **FLAGGED** — {v.flagged['edited']} row(s) edited by hand, "
                       f"{v.flagged['stale']} stale (recipe changed): shown, never counted as "
                       "reproduced.\n")
        if v.flags:
            out.append(f"\n> **{' + '.join(f.upper() for f in v.flags)}** — {flags_text(v.flags)}\n")
        head = ["row", *[f"{s.datasets[ds].label or ds} {m}" for ds, m in v.columns], "verdict"]
        out.append("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
        for rv in v.rows:
            name = rv.name + (f" *(quoted: {rv.source})*" if not rv.runnable else "")
            if rv.precisions:
                name += f" *(precision {'/'.join(rv.precisions)}, paper: fp32)*"
            cells = [_md_cell(rv.numbers[c], v.ledger.digits.get(c) if v.ledger else 2)
                     for c in v.columns]
            out.append("| " + " | ".join([name.replace("|", "/"), *cells,
                                          V.LABELS[rv.verdict]]) + " |\n")
        for o in v.others:
            out.append(f"\n**Other results: {o.title}** — " + "; ".join(o.labels or [o.tier])
                       + "\n\n| row | column | metric | published | ours | Δ | verdict |\n"
                       "|---|---|---|---|---|---|---|\n")
            for rv in o.rows:
                for (ds, m), n in rv.numbers.items():
                    if n.mean is None and n.status in ("not run", "quoted", "n/a"):
                        continue
                    out.append(f"| {rv.name} | {ds} | {m} | {_fmt(n.published)} | {_ours(n)} "
                               f"| {_signed(n.delta)} | {V.SYMBOLS[n.verdict.key]} "
                               f"{n.verdict.label} |\n")
        if v.claims:
            out.append("\n**Claims** (checked on our numbers; published shows the paper's):\n\n")
            for c in v.claims:
                out.append(f"- {c.statement}: **{c.label}** (published: {c.published_status})"
                           + (f" — {c.claim.text}" if c.claim.text else "") + "\n")
        if v.ledger:
            out.append(L.markdown(v.ledger))
    for f, e in broken:
        out.append(f"\n**{f} could not be read:** {e}\n")
    return "".join(out)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
