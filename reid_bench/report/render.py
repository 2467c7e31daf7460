"""Rendering the view model (``report.view``) as HTML pages and markdown, from jinja templates.

HTML: ``index.html`` (every table: row verdict counts, claims held) and one
``<paper>-<table>.html`` per table, static files that open from disk (no server, no network,
figures inline as SVG). Markdown: ``report.md``, every table with verdict symbols. Tables in
markdown are written by ``reid_bench.core.textable``; the cell texts come from the helpers below.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from markupsafe import Markup

from ..core.textable import markdown_table
from ..table.rowstate import flag_text
from . import claims, ledger, verdicts
from .fmt import flags_text, fmt, fmt_published, ours, signed
from .view import NO_RESULT, Number, OtherResults, TableView

TEMPLATES = Path(__file__).parent / "templates"

AP_DEFINITIONS = {
    "standard": "AP = mean of the precision at the rank of each true match (area under the "
                "non-interpolated precision-recall curve), as torchreid / fast-reid compute it",
    "market_matlab": "AP as the Market-1501 authors' MATLAB code computes it: trapezoid rule "
                     "between consecutive recall points (precision averaged before and at each "
                     "true match)",
}


def _globals(env: jinja2.Environment) -> jinja2.Environment:
    env.filters["fmt"] = fmt
    env.filters["signed"] = signed
    env.filters["ours"] = ours
    env.globals["LABELS"] = verdicts.LABELS
    env.globals["SYMBOLS"] = verdicts.SYMBOLS
    env.globals["BLOCKS"] = ledger.BLOCKS
    env.globals["pubfmt"] = fmt_published
    env.globals["flags_text"] = flags_text
    env.globals["flag_text"] = flag_text
    return env


def html_env() -> jinja2.Environment:
    """The jinja environment of the HTML pages (autoescaped)."""
    env = _globals(jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                                      autoescape=jinja2.select_autoescape(["html", "j2"]),
                                      undefined=jinja2.StrictUndefined))
    env.filters["svg"] = lambda s: Markup(s)
    env.filters["short"] = lambda s: s[:10] if isinstance(s, str) else ("" if s is None else s)
    env.globals["AP_DEFINITIONS"] = AP_DEFINITIONS
    env.globals["DEFAULT_TOLERANCES"] = verdicts.DEFAULT_TOLERANCES
    env.globals["tolerance"] = verdicts.tolerance
    env.globals["Z"] = claims.Z
    env.globals["NO_RESULT"] = NO_RESULT
    return env


def html_pages(views: list[TableView], broken: list[tuple[str, str]],
               stamp: str) -> dict[str, str]:
    """File name -> HTML: one page per table, then ``index.html``."""
    env = html_env()
    pages = {v.page: env.get_template("table.html.j2").render(v=v, generated=stamp)
             for v in views}
    pages["index.html"] = env.get_template("index.html.j2").render(
        views=views, broken=broken, generated=stamp)
    return pages


def markdown_env() -> jinja2.Environment:
    """The jinja environment of ``report.md`` (plain text: no escaping; block tags take their
    line's newline, so the templates read like the markdown they write)."""
    env = _globals(jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                                      autoescape=False, undefined=jinja2.StrictUndefined,
                                      trim_blocks=True, lstrip_blocks=True,
                                      keep_trailing_newline=True))
    env.globals.update(
        table=lambda header, rows: markdown_table(header, rows).rstrip("\n"),
        main_header=main_header, main_rows=main_rows, other_rows=other_rows,
        reason_items=reason_items, variant_rows=variant_rows, SEVERITY=verdicts.SEVERITY)
    env.filters["code"] = lambda x: f"`{x}`"
    return env


def markdown(views: list[TableView], broken: list[tuple[str, str]], stamp: str) -> str:
    """Every table as markdown: "published / ours ± std (Δ) verdict" per cell, then claims."""
    return markdown_env().get_template("report.md.j2").render(views=views, broken=broken,
                                                              generated=stamp)


def _verdict_text(n: Number) -> str:
    return f"{n.verdict.symbol} {n.verdict.label}"


def flag_marks(flags: list[str]) -> str:
    """" [flag, flag]" after a number in markdown ("" without flags)."""
    return f" [{', '.join(flags)}]" if flags else ""


def number_cell(n: Number, digits: int | None = 2) -> str:
    """One number in markdown: "published / ours ± std [flags] (Δ) verdict"."""
    pub = fmt_published(n.published, digits)  # as the paper prints it
    if n.status == "quoted":
        return pub
    if n.mean is None:
        return f"{pub} / {_verdict_text(n)}"
    return f"{pub} / {ours(n)}{flag_marks(n.flags)} ({signed(n.delta)}) {_verdict_text(n)}"


def main_header(v: TableView) -> list[str]:
    """The main markdown table's header: row, "<column label> <metric>" per column, verdict."""
    return ["row", *[f"{v.spec.datasets[ds].label or ds} {m}" for ds, m in v.columns],
            "verdict"]


def main_rows(v: TableView) -> list[list[str]]:
    """The main markdown table's rows: name (quoted source, precision), one cell per column,
    the row verdict."""
    out = []
    for rv in v.rows:
        name = rv.name + (f" *(quoted: {rv.source})*" if not rv.runnable else "")
        if rv.precisions:
            name += f" *(precision {'/'.join(rv.precisions)}, paper: fp32)*"
        out.append([name, *(number_cell(rv.numbers[c], v.ledger.digits.get(c) if v.ledger else 2)
                            for c in v.columns), verdicts.LABELS[rv.verdict]])
    return out


def reason_items(v: TableView) -> list[str]:
    """Markdown list items saying, in full, why a row's numbers are missing or failed (not run
    without a stand-in, a failure's error, an edit): one per distinct reason of each row; a
    multi-line reason as an indented code block."""
    out = []
    for rv in v.rows:
        for r in rv.shown_reasons:
            if "\n" in r.strip():
                block = "\n".join("    " + ln for ln in r.strip().splitlines())
                out.append(f"- **{rv.name}**:\n\n{block}")
            else:
                out.append(f"- **{rv.name}**: {r.strip()}")
    return out


def other_rows(o: OtherResults) -> list[list[str]]:
    """Rows (row, column, metric, published, ours, Δ, verdict) of another tier or variant:
    the numbers it has, not the cells it never ran."""
    return [[rv.name, ds, m, fmt(n.published), ours(n) + flag_marks(n.flags), signed(n.delta),
             _verdict_text(n) + (f" — {n.reason.strip().splitlines()[0]}"
                                 if n.reason.strip() and n.status != "ok" else "")]
            for rv in o.rows for (ds, m), n in rv.numbers.items()
            if n.listed]


def variant_rows(led: ledger.Ledger, run: ledger.VariantRun) -> list[list[str]]:
    """Rows of an assumption-variant run beside the canonical numbers."""
    return [[x.row, x.dataset, x.metric,
             fmt_published(x.published, led.digits.get((x.dataset, x.metric))),
             fmt(x.main), x.main_verdict.label, fmt(x.value) + flag_marks(x.flags),
             x.verdict.label, signed(x.move)]
            for x in run.numbers]
