"""Commands that read specs and results: ``validate``, ``published``, ``report``,
``compare`` and ``status``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .deprecation import Command, old_spelling
from .errors import warn
from .tiers import chosen_tier, tier_options

RESULTS_HELP = "Results folder: one <paper>/<table>.csv per table, cell records beside them."


@click.command(cls=Command)
@click.argument("paths", nargs=-1, type=click.Path(), metavar="[SPECS]...")
@click.option("--paper-texts", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of the papers' plain texts (<paper id>.txt): also check that every "
                   "`source:` quote and `replaces:` text is found in the paper.")
@click.option("--consistency", "show_consistency", is_flag=True,
              help="Also print what the published-number consistency checks found per table "
                   "(they always run: CMC non-decreasing, mAP feasible under the spec's AP "
                   "definition, identical rows across tables declared with same_as).")
def validate(paths, paper_texts=None, show_consistency=False):
    """Validate SPECS (files or folders; default: every papers/*/table*.yaml), their published
    numbers' consistency included."""
    from ..core.errors import SpecError
    from ..spec import find_specs, load_spec
    from ..spec.consistency import check_specs
    from ..spec.consistency_text import details, error_text
    from ..spec.schedule import schedule_warnings

    files = find_specs(list(paths) or None)
    if not files:
        raise click.UsageError("no spec files found (looked for papers/*/table*.yaml)")
    bad = 0
    loaded = {}
    for f in files:
        try:
            # The project's own specs (papers/ here) trace every value their methods read.
            s = load_spec(f, check_methods=True,
                          complete=(Path.cwd() / "papers").resolve() in Path(f).resolve().parents)
            if paper_texts:
                from ..spec.quotes import check_quotes, paper_text

                text = paper_text(Path(paper_texts), s)
                missing = check_quotes(s, text) if text is not None else []
                if missing:
                    bad += 1
                    click.echo(f"invalid {f}\n" + "\n".join(
                        f"{f}: {key}: {fld} not found in {paper_texts}/{s.paper.id}.txt: {q!r}"
                        for key, fld, q in missing), err=True)
                    continue
            loaded[f] = s
        except SpecError as exc:
            bad += 1
            click.echo(f"invalid {f}\n{exc}", err=True)
    # Identical rows are looked for among every spec of the project, not only those named.
    done = {Path(f).resolve() for f in loaded}
    universe = []
    for f in find_specs(None):
        if Path(f).resolve() in done:
            continue
        try:
            universe.append(load_spec(f))
        except SpecError:
            pass  # reported when validated itself
    result = check_specs(list(loaded.values()), universe)
    for f, s in loaded.items():
        errs = result.errors.get(s.path)
        if errs:
            bad += 1
            click.echo(f"invalid {f}\n{error_text(s.path, errs)}", err=True)
        else:
            click.echo(f"ok      {f} ({len(s.rows)} rows)")
            for w in schedule_warnings(s):
                warn(str(w))
    if show_consistency:
        click.echo("\n".join(details(list(loaded.values()), result)))
    if bad:
        click.echo(f"{bad} of {len(files)} spec(s) invalid", err=True)
        sys.exit(1)


@click.command(cls=Command)
@click.argument("paths", nargs=-1, type=click.Path(), metavar="[SPECS]...")
@click.option("--format", "fmt", type=click.Choice(["csv", "markdown"]), default="csv",
              show_default=True,
              help="csv: one number per line (spreadsheet-safe); markdown: one table per "
                   "paper table.")
def published(paths, fmt):
    """Print every published number of SPECS (files or folders; default: papers/), in long
    format."""
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
    from ..core.spreadsheet import to_csv  # row names may start with '=', '+', '-' or '@'

    click.echo(to_csv(df), nl=False)


@click.command(cls=Command)
@click.argument("spec_paths", nargs=-1, type=click.Path(), metavar="[SPECS]...")
@click.option("--results-dir", type=click.Path(file_okay=False), default="results",
              show_default=True, help=RESULTS_HELP)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: <results-dir>/report).")
@old_spelling("--specs", "the SPECS arguments", "spec_paths", multiple=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["html", "markdown", "json", "latex"]),
              default="html", show_default=True,
              help="html: static site (index.html + one page per table); markdown: report.md; "
                   "json: summary.json for scripts; latex: report.tex (booktabs tables).")
def report(results_dir, out, spec_paths, fmt):
    """Render the report of SPECS (files or folders; default: papers/): published vs
    reproduced, verdicts and claims for every table."""
    from ..report.build import build_report
    from ..spec import find_specs

    if not find_specs(list(spec_paths) or None):
        where = ", ".join(spec_paths) if spec_paths else f"{Path('papers').resolve()}/*/table*.yaml"
        raise click.UsageError(f"no spec files found (looked for {where}). Run `reid-bench "
                               "report` from the repository root, or name the specs: "
                               "`reid-bench report SPEC…`.")
    out = Path(out) if out else Path(results_dir) / "report"
    index = build_report(Path(results_dir), out, list(spec_paths) or None, fmt=fmt)
    click.echo(f"report written: {index}")


@click.command(cls=Command)
@click.argument("results_a", type=click.Path(file_okay=False, exists=True))
@click.argument("results_b", type=click.Path(file_okay=False, exists=True))
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
              show_default=True,
              help="text: aligned table with deltas; csv: spreadsheet-safe; json: records for "
                   "scripts.")
def compare(results_a, results_b, fmt):
    """Two results folders (RESULTS_A, RESULTS_B) side by side (two GPUs, two commits): per
    table, row, dataset and metric the mean ± std over seeds in each, and the delta B − A."""
    from ..spec import specs_by_table
    from ..store.compare import compare as compare_folders
    from ..store.compare import format_text

    a, b = Path(results_a), Path(results_b)
    df = compare_folders(a, b, specs_by_table())
    if fmt == "csv":
        from ..core.spreadsheet import to_csv  # row names, variants: text a spreadsheet may run

        click.echo(to_csv(df), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", indent=1))
    else:
        click.echo(format_text(df, a, b), nl=False)


@click.command(cls=Command)
@click.argument("spec_paths", nargs=-1, type=click.Path(), metavar="[SPECS]...")
@click.option("--results-dir", type=click.Path(file_okay=False), default="results",
              show_default=True, help=RESULTS_HELP)
@tier_options(tier_help="Only this tier's cells (default: the full tier, planned, and every "
                        "other tier the results folder holds).",
              smoke_help="Only the smoke cells (--tier smoke).",
              shakedown_help="Only the shakedown cells (--tier shakedown).",
              smoke_recipe_help="Only the smoke-recipe cells (--tier smoke_recipe).")
@click.option("--variant", "variant", default=None, metavar="VARIANT",
              help="Only this variant's cells, as status heads it (e.g. subset, "
                   "set:train.lr=0.02); 'canonical' for the spec's own cells.")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Dataset root the cells are checked against (default: $REID_BENCH_DATA, "
                   "else ./data): a cell finished on other data is not done.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of derived files (synthetic data, extracted CUHK03 images).")
@click.option("--num-seeds", "num_seeds", type=click.IntRange(1), default=None,
              help="Number of seeds planned, 0..N-1 (default: the spec's `seeds`).")
@old_spelling("--seeds", "--num-seeds", "num_seeds", type=click.IntRange(1))
@click.option("--quiet", is_flag=True, help="Only the per-table counts, no cell lines.")
@old_spelling("--brief", "--quiet", "quiet", is_flag=True)
def status(spec_paths, results_dir, num_seeds=None, quiet=False, tier=None, smoke=False,
           shakedown=False, smoke_recipe=False, variant=None, data_root=None, cache_dir=None):
    """Done / running / interrupted / failed / stale / pending cells of each of SPECS (files or
    folders; default: every papers/ spec), in every tier and variant the results folder
    holds."""
    from ..core.cache_dir import use_cache_dir
    from ..spec import find_specs, load_spec
    from ..table.finished import DataFingerprints
    from ..table.overrides import compose_variant, spec_parts
    from ..table.status import format_status, groups_present, table_status

    files = find_specs(list(spec_paths) or None)
    if not files:
        raise click.UsageError("no spec files found (looked for papers/*/table*.yaml)")
    use_cache_dir(cache_dir)
    tier = chosen_tier(tier, smoke, shakedown, smoke_recipe)
    fingerprints = DataFingerprints(data_root)
    res = Path(results_dir)
    shown_full, other_tiers, matched = 0, set(), False
    for f in files:
        spec = load_spec(f)
        own = compose_variant(spec_parts(spec))
        want_v = None if variant is None else own if variant == "canonical" else variant
        groups = groups_present(spec, res)
        if tier is not None and not any(t == tier for t, _ in groups):
            groups.append((tier, own))  # a tier asked for is planned even without results
        for t, v in groups:
            if (tier is not None and t != tier) or (want_v is not None and v != want_v):
                continue
            matched = True
            cells = table_status(spec, res, seeds=num_seeds, tier=t, variant=v,
                                 fingerprints=fingerprints)
            if t == "full" and v == own:
                shown_full += sum(c.state != "pending" for c in cells)
            else:
                other_tiers.add(t)
            click.echo(format_status(spec, cells, verbose=not quiet, tier=t, variant=v))
    if variant is not None and not matched:
        raise click.UsageError(f"no cells of variant {variant!r} in {res}; drop --variant to "
                               "see every variant present")
    if tier is None and variant is None and not shown_full and other_tiers:
        names = ", ".join(sorted(other_tiers))
        first = sorted(other_tiers)[0]
        click.echo(f"\nno full-tier results in {res}: it holds only {names} cells (shown "
                   f"above); to see them alone: `reid-bench status --tier {first}`")
