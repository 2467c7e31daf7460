"""``reid-bench report``: every spec's table, published vs reproduced, in one of four formats.

``build_report`` writes, into ``out``:

- ``html`` (default): ``index.html`` (every table: row verdict counts, claims held) and one
  ``<paper>-<table>.html`` per table. Static files only: they open from disk, no server, no
  network, figures inline as SVG.
- ``markdown``: ``report.md``, every table as a markdown table with verdict symbols.
- ``json``: ``summary.json``, every number, verdict and claim for scripts.
- ``latex``: ``report.tex``, one booktabs table per paper table (``reid_bench.report.latex``).

The steps live in their own modules: ``report.aggregate`` (spec + results CSV -> view model),
``report.view`` (the view model), ``report.render`` (HTML and markdown from jinja templates),
``report.latex`` and ``report.summary`` (JSON). Every flag and verdict comes from each results
row's ``rowstate.RowState``: a table's headline holds only full-tier results of its own spec;
smoke, shakedown, smoke-recipe, subset and variant results are labelled blocks beside it, and
anything computed on synthetic data reads "synthetic: not comparable" wherever it is shown.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from ..core import atomic
from ..core.safepath import inside
from .aggregate import collect, table_view
from .render import html_pages, markdown
from .summary import summary

# ``table_view`` is re-exported: scripts and tests build one table's view from here.
__all__ = ["FORMATS", "build_report", "table_view"]

FORMATS = ("html", "markdown", "json", "latex")


def build_report(results_dir: Path, out: Path, spec_paths: list[str] | None = None,
                 fmt: str = "html") -> Path:
    """Render the report for every spec into ``out`` in ``fmt`` (html | markdown | json |
    latex); return the main file written (index.html, report.md, summary.json or
    report.tex). Every file is written atomically (``reid_bench.core.atomic``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; allowed: {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    views, broken = collect(Path(results_dir), spec_paths, with_plots=fmt == "html")
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if fmt == "json":
        files = {"summary.json": json.dumps(summary(views, broken, stamp), indent=1,
                                            default=str)}
    elif fmt == "latex":
        from .latex import render_latex

        files = {"report.tex": render_latex(views, broken, stamp)}
    elif fmt == "markdown":
        files = {"report.md": markdown(views, broken, stamp)}
    else:
        files = html_pages(views, broken, stamp)  # index.html last
    for name, text in files.items():
        atomic.write_text(inside(out, out / name), text)
    return out / name
