"""Commands that read specs and results: ``validate``, ``published``, ``report``,
``compare`` and ``status``."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--paper-texts", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of the papers' plain texts (<paper id>.txt): also check that every "
                   "`source:` quote and `replaces:` text is found in the paper.")
def validate(paths, paper_texts=None):
    """Validate specs (default: every papers/*/table*.yaml)."""
    from ..errors import SpecError
    from ..spec import find_specs, load_spec

    files = find_specs(list(paths) or None)
    if not files:
        raise click.UsageError("no spec files found (looked for papers/*/table*.yaml)")
    bad = 0
    for f in files:
        try:
            s = load_spec(f, check_methods=True)
            if paper_texts:
                from ..quotes import check_quotes, paper_text

                text = paper_text(Path(paper_texts), s)
                missing = check_quotes(s, text) if text is not None else []
                if missing:
                    bad += 1
                    click.echo(f"invalid {f}\n" + "\n".join(
                        f"{f}: {key}: {fld} not found in {paper_texts}/{s.paper.id}.txt: {q!r}"
                        for key, fld, q in missing), err=True)
                    continue
            click.echo(f"ok      {f} ({len(s.rows)} rows)")
        except SpecError as exc:
            bad += 1
            click.echo(f"invalid {f}\n{exc}", err=True)
    if bad:
        click.echo(f"{bad} of {len(files)} spec(s) invalid", err=True)
        sys.exit(1)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["csv", "markdown"]), default="csv",
              show_default=True)
def published(paths, fmt):
    """Print every published number of the specs (long format)."""
    import pandas as pd

    from ..spec import find_specs, load_spec

    recs, captions = [], {}
    for f in find_specs(list(paths) or None):
        s = load_spec(f)
        captions[(s.paper.id, s.table.id)] = (s.paper, s.table.caption)
        for r in s.rows:
            for ds, metrics in r.published.items():
                for m, v in metrics.items():
                    recs.append({"paper": s.paper.id, "table": s.table.id, "row": r.name,
                                 "dataset": ds, "metric": m, "value": v,
                                 "runnable": r.runnable})
    df = pd.DataFrame(recs, columns=["paper", "table", "row", "dataset", "metric", "value",
                                     "runnable"])
    if fmt == "markdown":
        from ..report.published import published_markdown

        click.echo(published_markdown(df, captions), nl=False)
        return
    from ..spreadsheet import to_csv  # row names may start with '=', '+', '-' or '@'

    click.echo(to_csv(df), nl=False)


@click.command()
@click.option("--results-dir", type=click.Path(file_okay=False), default="results",
              show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: <results-dir>/report).")
@click.option("--specs", "spec_paths", multiple=True, help="Spec files/folders (default: papers/).")
@click.option("--format", "fmt", type=click.Choice(["html", "markdown", "json", "latex"]),
              default="html", show_default=True,
              help="html: static site (index.html + one page per table); markdown: report.md; "
                   "json: summary.json for scripts; latex: report.tex (booktabs tables).")
def report(results_dir, out, spec_paths, fmt):
    """Render the report: published vs reproduced, verdicts and claims for every table."""
    from ..report.build import build_report
    from ..spec import find_specs

    if not find_specs(list(spec_paths) or None):
        where = ", ".join(spec_paths) if spec_paths else f"{Path('papers').resolve()}/*/table*.yaml"
        raise click.UsageError(f"no spec files found (looked for {where}). Run `reid-bench "
                               "report` from the repository root, or name the specs with --specs.")
    out = Path(out) if out else Path(results_dir) / "report"
    index = build_report(Path(results_dir), out, list(spec_paths) or None, fmt=fmt)
    click.echo(f"report written: {index}")


@click.command()
@click.argument("results_a", type=click.Path(file_okay=False, exists=True))
@click.argument("results_b", type=click.Path(file_okay=False, exists=True))
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
              show_default=True)
def compare(results_a, results_b, fmt):
    """Two results folders side by side (two GPUs, two commits): per table, row, dataset and
    metric the mean ± std over seeds in each, and the delta B − A."""
    from ..compare import compare as compare_folders
    from ..compare import format_text

    a, b = Path(results_a), Path(results_b)
    df = compare_folders(a, b)
    if fmt == "csv":
        from ..spreadsheet import to_csv  # row names, variants: text a spreadsheet may run

        click.echo(to_csv(df), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", indent=1))
    else:
        click.echo(format_text(df, a, b), nl=False)


@click.command()
@click.argument("spec_paths", nargs=-1, type=click.Path())
@click.option("--results-dir", type=click.Path(file_okay=False), default="results",
              show_default=True)
@click.option("--smoke", is_flag=True, help="Status of the --smoke cells.")
@click.option("--tier", type=click.Choice(["full", "smoke", "shakedown", "smoke_recipe"]),
              default=None, help="Status of this tier's cells (default: full; smoke with --smoke).")
@click.option("--seeds", type=click.IntRange(1), default=None,
              help="Number of seeds planned (default: the spec's `seeds`).")
@click.option("--brief", is_flag=True, help="Only the per-table counts.")
def status(spec_paths, results_dir, smoke, seeds, brief, tier=None):
    """Pending / running / done / failed cells of each table (default: every papers/ spec)."""
    from ..spec import find_specs, load_spec
    from ..status import format_status, table_status

    files = find_specs(list(spec_paths) or None)
    if not files:
        raise click.UsageError("no spec files found (looked for papers/*/table*.yaml)")
    for f in files:
        spec = load_spec(f)
        click.echo(format_status(spec, table_status(spec, Path(results_dir), smoke=smoke,
                                                    seeds=seeds, tier=tier),
                                 verbose=not brief))
