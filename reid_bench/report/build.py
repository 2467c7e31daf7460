"""Assemble published and reproduced numbers per table and render the static HTML site.

The site opens from disk (no server, no network): ``index.html`` lists every paper table with
its row counts; ``<paper>-<table>.html`` shows the whole table as the paper prints it, quoted
rows greyed, reproduced mean ± std over seeds beside each published number, the delta, the run
status (with the reason a cell did not run), the protocol/AP definition and the provenance.
Anything computed on synthetic data carries a visible "synthetic smoke" label.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ..errors import SpecError
from ..results import read_results, table_csv
from ..spec import Spec, find_specs, load_spec, resolved_recipe

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Number:
    """One published number and what we reproduced for it."""

    published: float | None
    mean: float | None = None
    std: float | None = None
    n: int = 0
    status: str = "not run"  # ok | failed | diverged | not run | quoted
    reason: str = ""
    synthetic: bool = False

    @property
    def delta(self) -> float | None:
        if self.published is None or self.mean is None:
            return None
        return self.mean - self.published


@dataclass
class RowView:
    name: str
    runnable: bool
    method: str | None
    source: str | None
    note: str | None
    numbers: dict[tuple[str, str], Number] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TableView:
    spec: Spec
    rows: list[RowView]
    columns: list[tuple[str, str]]  # (dataset column, metric)
    counts: dict[str, int]
    synthetic: bool
    provenance: list[dict[str, Any]]
    assumptions: list[tuple[str, str, str]]  # (row or "table", key, reason)
    page: str


def _status_of(df: pd.DataFrame) -> tuple[str, str]:
    if df.empty:
        return "not run", "no result yet: run `reid-bench run` on this spec"
    if (df["status"] == "ok").any():
        return "ok", ""
    last = df.iloc[-1]
    status = str(last["status"]).replace("not_run", "not run")
    err = last["error"] if isinstance(last["error"], str) else ""
    return status, err


def table_view(spec: Spec, results_dir: Path) -> TableView:
    """Published vs reproduced for every row × column × metric of ``spec``."""
    df = read_results(table_csv(results_dir, spec.paper.id, spec.table.id))
    # Real results take precedence over smoke results of the same cell.
    has_real = not df.empty and (~df["smoke"].astype(bool)).any()
    if has_real:
        df = df[~df["smoke"].astype(bool)]
    columns = [(ds, m) for ds in spec.datasets for m in spec.column_metrics(ds)]
    rows, counts = [], {"ok": 0, "not run": 0, "failed": 0, "quoted": 0}
    for r in spec.rows:
        rv = RowView(r.name, r.runnable, r.method, r.source, r.note)
        sub = df[df["row"] == r.name] if not df.empty else df
        rv.cells = sub.to_dict("records")
        for ds, m in columns:
            pub = r.published.get(ds, {}).get(m)
            num = Number(published=pub)
            in_row = r.datasets is None or ds in r.datasets
            if not r.runnable:
                num.status, num.reason = "quoted", r.source or ""
            elif not in_row:
                num.status, num.reason = "n/a", "row does not run on this column"
            else:
                cell = sub[sub["dataset"] == ds] if not sub.empty else sub
                num.status, num.reason = _status_of(cell)
                ok = cell[cell["status"] == "ok"] if not cell.empty else cell
                vals = pd.to_numeric(ok[m], errors="coerce").dropna() if m in ok else []
                if len(vals):
                    num.mean = float(vals.mean())
                    num.std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
                    num.n = len(vals)
                    num.synthetic = bool(ok["synthetic"].astype(bool).any())
            rv.numbers[(ds, m)] = num
        statuses = {n.status for n in rv.numbers.values()}
        key = ("quoted" if not r.runnable else "ok" if statuses == {"ok"} or
               statuses <= {"ok", "n/a"} else "failed" if statuses & {"failed", "diverged"}
               else "not run")
        counts[key] += 1
        rows.append(rv)
    prov_cols = ["git_commit", "git_dirty", "spec_hash", "config_hash", "dataset_fingerprint",
                 "device_name", "torch", "torchvision", "timm", "wall_s", "finished_at"]
    prov = (df[["row", "dataset", "seed", "status", *prov_cols]].to_dict("records")
            if not df.empty else [])
    return TableView(spec, rows, columns, counts,
                     synthetic=bool(not df.empty and df["synthetic"].astype(bool).any()),
                     provenance=prov, assumptions=_assumptions(spec),
                     page=f"{spec.paper.id}-{spec.table.id}.html")


def _assumptions(spec: Spec) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for r in spec.rows:
        if not r.runnable:
            continue
        _, prov = resolved_recipe(spec, r, smoke=False)
        for key, p in sorted(prov.items()):
            if "assumed" in p and (key, p["assumed"]) not in seen:
                seen.add((key, p["assumed"]))
                out.append((r.name, key, p["assumed"]))
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    env.filters["signed"] = lambda x: "–" if x is None else f"{x:+.2f}"
    return env


def build_report(results_dir: Path, out: Path, spec_paths: list[str] | None = None) -> Path:
    """Render the site for every spec into ``out``; return the index path."""
    out.mkdir(parents=True, exist_ok=True)
    env = _env()
    views, broken = [], []
    for f in find_specs(spec_paths):
        try:
            views.append(table_view(load_spec(f), results_dir))
        except SpecError as exc:
            broken.append((str(f), str(exc)))
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    for v in views:
        html = env.get_template("table.html.j2").render(v=v, generated=stamp)
        _write(out / v.page, html)
    index = out / "index.html"
    _write(index, env.get_template("index.html.j2").render(views=views, broken=broken,
                                                           generated=stamp))
    return index


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
