"""``reid-bench``: run a paper table, report it against the published numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .errors import ReidBenchError


class _Group(click.Group):
    """Prints ReidBenchError as a one-paragraph message (no traceback) and exits 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ReidBenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="reid-bench")
def main() -> None:
    """Re-run person re-identification paper tables and compare them with the published numbers.

    \b
      reid-bench run papers/fmn/table5.yaml --smoke   # train + evaluate every row
      reid-bench report                               # HTML: published vs reproduced
    """


@main.command()
@click.argument("spec_paths", nargs=-1, required=True, type=click.Path())
@click.option("--rows", "rows", multiple=True,
              help="Run only these rows: names, case-insensitive, comma-separated or repeated.")
@click.option("--datasets", "datasets", multiple=True,
              help="Run only these dataset columns (column id, dataset name or label; "
                   "case-insensitive, comma-separated or repeated).")
@click.option("--seeds", type=click.IntRange(1), default=None,
              help="Number of seeds (0..N-1); default: the spec's `seeds`.")
@click.option("--smoke", is_flag=True,
              help="Synthetic stand-in dataset and the spec's shrunk recipe (CPU minutes). "
                   "Results are labelled synthetic everywhere.")
@click.option("--shakedown", is_flag=True,
              help="Every cell of the real run with the full recipe (input size, width, batch "
                   "sizes, every stage), each stage stopped after --shakedown-steps steps, on "
                   "the synthetic stand-in at the recipe's resolution with a small gallery. "
                   "Records step time, first/last loss and peak memory; labelled shakedown "
                   "everywhere, never a reproduction.")
@click.option("--shakedown-steps", type=click.IntRange(1), default=2, show_default=True,
              help="Optimisation steps per training stage under --shakedown.")
@click.option("--pretrained", type=click.Choice(["spec", "none"]), default="spec",
              show_default=True,
              help="With --shakedown: 'none' starts every backbone from random init instead of "
                   "the spec's ImageNet weights (machines without the weights); recorded in "
                   "the CSV.")
@click.option("--max-batch", type=click.IntRange(1), default=None,
              help="With --shakedown on CPU only: cap every stage's batch size (P×K samplers "
                   "keep P >= 2). Refused on CUDA, where the real batch must be proven.")
@click.option("--variant", "variants", multiple=True, metavar="KEY=VALUE",
              help="Run the rows whose assumed value KEY lists VALUE among its `alternatives`, "
                   "with VALUE in its place (repeatable); results are stored beside the main "
                   "ones under variant `variant:KEY=VALUE`. Evaluation-only keys (eval.*) reuse "
                   "the trained models.")
@click.option("--smoke-recipe", is_flag=True,
              help="The spec's shrunk recipe on YOUR real data (tier smoke_recipe; labelled "
                   "so in CSV and report, never compared as a reproduction).")
@click.option("--subset", is_flag=True,
              help="The dataset is a deliberate subset of the real one: its layout is checked, "
                   "its counts are not; results are labelled subset everywhere.")
@click.option("--dry-run", is_flag=True,
              help="Print the plan with epochs, images and (with a throughput) GPU-hours; exit.")
@click.option("--throughput", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="IMG_PER_S",
              help="Training images per second per GPU, for --dry-run time estimates "
                   "(a shakedown measurement of the cell wins when present).")
@click.option("--results-dir", type=click.Path(file_okay=False), default="results",
              show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Dataset root (default: $REID_BENCH_DATA, else ./data); only read.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for derived files: synthetic data, extracted CUHK03 images "
                   "(default: $REID_BENCH_CACHE, else ~/.cache/reid-bench).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available).")
@click.option("--force", is_flag=True, help="Recompute finished cells.")
@click.option("--num-workers", type=click.IntRange(0), default=None,
              help="Data loader worker processes per training process (default: min(8, "
                   "CPUs per process) on CUDA, 0 on CPU).")
@click.option("--checkpoint-every", type=click.IntRange(0), default=5, show_default=True,
              help="Save a resumable training checkpoint every N epochs (0: never).")
@click.option("--checkpoint-minutes", type=click.FloatRange(min=0), default=10.0,
              show_default=True,
              help="Also save one at the end of an epoch once this many minutes passed since "
                   "the last (0: never).")
@click.option("--quiet", is_flag=True,
              help="No progress bars and no per-epoch lines: one line per cell and the summary.")
@click.option("--deterministic", is_flag=True, help="torch deterministic algorithms.")
@click.option("--precision", type=click.Choice(["fp32", "tf32", "bf16", "fp16"]),
              default="fp32", show_default=True,
              help="Training and embedding arithmetic. fp32 (the papers'; TF32 off); tf32 "
                   "(TF32 tensor cores, CUDA); bf16 / fp16 autocast (fp16 with dynamic loss "
                   "scaling). Recorded per cell; the report flags anything but fp32.")
@click.option("--channels-last/--no-channels-last", "channels_last", default=False,
              show_default=True, help="channels_last memory format (recorded per cell).")
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True,
              help="torch.compile the model (pays off on long real-size runs).")
@click.option("--launcher", type=click.Choice(["local", "torchrun", "slurm"]), default="local",
              show_default=True,
              help="local: this process (--nproc N: N processes sharing the cells, one per "
                   "GPU); torchrun: each cell as one DDP job of --nproc processes; slurm: "
                   "each pending cell as one task of a submitit job array.")
@click.option("--nproc", type=click.IntRange(1), default=1, show_default=True,
              help="Processes (GPUs): per cell with torchrun/slurm, in parallel with local.")
@click.option("--slurm-partition", default=None, help="Slurm partition.")
@click.option("--slurm-time", default=None, help="Time per cell job: minutes or [D-]HH:MM:SS.")
@click.option("--slurm-gpus", type=click.IntRange(0), default=None, help="GPUs per cell job.")
@click.option("--slurm-array-parallelism", type=click.IntRange(1), default=None,
              help="Array tasks running at once.")
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH",
              help="Start backbone NAME (caffenet, vgg16, resnet50) from this file instead of "
                   "its ImageNet weights (repeatable). See `reid-bench weights list`.")
@click.option("--site-config", type=click.Path(dir_okay=False, exists=True), default=None,
              help="YAML of Slurm settings (reid_bench.launch.slurm.SlurmConfig); flags win.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value by its dotted key, e.g. --set train.lr=0.02 "
                   "(repeatable; value parsed as YAML). Validated like the spec; the results "
                   "are keyed and labelled as deviating from the paper's recipe.")
def run(spec_paths, rows, seeds, smoke, dry_run, results_dir, data_root, device, force,
        num_workers, checkpoint_every, deterministic, shakedown=False, shakedown_steps=2,
        pretrained="spec", max_batch=None, precision="fp32", channels_last=False,
        compile_=False, launcher="local", nproc=1, slurm_partition=None,
        slurm_time=None, slurm_gpus=None, slurm_array_parallelism=None, site_config=None,
        sets=(), variants=(), datasets=(), smoke_recipe=False, subset=False, throughput=None,
        cache_dir=None, checkpoint_minutes=10.0, quiet=False, weights=()):
    """Train and evaluate every runnable row of each SPEC (files, or folders of
    table*.yaml); write results/<paper>/<table>.csv per spec."""
    import torch

    from .cache_dir import use_cache_dir
    from .console import configure as configure_console
    from .integrity import output_safe, quiet_stdout
    from .overrides import compose_variant, parse_sets, set_parts, spec_parts, validate_overrides
    from .plan import plan
    from .results import SHRUNK_TIERS
    from .runner import Runner, RunOptions, indent
    from .selection import dataset_choices, expand_spec_paths, match, row_choices, split_names
    from .shakedown import ShakedownOptions, check_device
    from .spec import load_spec

    chosen = [f for f, on in (("--smoke", smoke), ("--smoke-recipe", smoke_recipe),
                              ("--shakedown", shakedown)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} exclude each other: choose one tier")
    if (smoke or shakedown) and subset:
        raise click.UsageError("--subset describes real data; --smoke and --shakedown use the "
                               "synthetic stand-in")
    if not shakedown and (pretrained != "spec" or max_batch is not None):
        raise click.UsageError("--pretrained and --max-batch belong to --shakedown runs")
    if variants and (launcher != "local" or nproc > 1):
        raise click.UsageError("--variant runs with the local launcher (one process) only")
    use_cache_dir(cache_dir)
    paths = expand_spec_paths(spec_paths)
    specs = [load_spec(p) for p in paths]
    want_rows = match(split_names(rows), row_choices(specs), "row") if rows else None
    want_ds = match(split_names(datasets), dataset_choices(specs), "dataset") if datasets else None
    tier = ("smoke" if smoke else "smoke_recipe" if smoke_recipe
            else "shakedown" if shakedown else "full")
    overrides = parse_sets(sets)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    shake = (ShakedownOptions(steps=shakedown_steps, pretrained=pretrained,
                              max_batch=max_batch) if shakedown else None)
    check_device(shake, device)
    from .launch.dispatch import accel_options, dispatch
    from .weights import parse_overrides

    opts = RunOptions(results_dir=Path(results_dir), data_root=data_root,
                      device=device, smoke=smoke, force=force,
                      num_workers=num_workers, checkpoint_every=checkpoint_every,
                      deterministic=deterministic,
                      accel=accel_options(precision, channels_last, compile_),
                      launcher=launcher, nproc=nproc, overrides=overrides,
                      shakedown=shake, subset=subset,
                      checkpoint_minutes=checkpoint_minutes, quiet=quiet,
                      weights=parse_overrides(weights))
    # An output error (`run … | head`) never becomes a cell's failure; the library logs
    # (reid_bench.console), printed here as before.
    echo = output_safe(click.echo, on_close=quiet_stdout)
    click.get_current_context().call_on_close(configure_console(
        echo, err=output_safe(lambda m: click.echo(m, err=True)), quiet=quiet))
    label = {"smoke": " — SMOKE, synthetic data", "smoke_recipe": " — SMOKE RECIPE on real data",
             "shakedown": " — SHAKEDOWN, full recipe for a few steps, synthetic data",
             "full": ""}[tier] + (" — SUBSET of the dataset" if subset else "")
    failed_any, grand, grand_unknown, seen = False, 0.0, False, {}
    for spec_path, spec in zip(paths, specs, strict=True):
        # A spec copy, overrides or a subset: own cells, never the canonical ones.
        variant = compose_variant(spec_parts(spec) + set_parts(overrides)
                                  + (["subset"] if subset else []))
        names = [r.name for r in spec.rows if want_rows is None or r.name in want_rows]
        cells = plan(spec, rows=names, seeds=seeds, tier=tier, variant=variant) if names else []
        if want_ds is not None:
            cells = [c for c in cells if c.dataset in want_ds]
        if cells:
            validate_overrides(spec, list({c.row.name: c.row for c in cells}.values()),
                               overrides, smoke=tier in SHRUNK_TIERS)
        if cells and variants:
            from .variants import apply_variants

            spec, cells = apply_variants(spec, list(variants), cells,
                                         smoke=tier in SHRUNK_TIERS)
        quoted = sum(1 for r in spec.rows if not r.runnable)
        echo(f"{spec.paper.id}/{spec.table.id}: {len(cells)} cell(s) to plan "
             f"({quoted} quoted row(s) not runnable){label}")
        if variant:
            echo(f"variant {variant!r}: results are kept apart from the canonical spec's")
        if not cells:
            continue
        if dry_run:
            from .estimate import Estimator, format_estimates
            from .launch.dry_run import dry_run_lines

            # The cells as the launcher's workers receive them (every split), then estimates.
            echo("\n".join(dry_run_lines(spec, cells, launcher, nproc)))

            est = Estimator(spec, opts, throughput, seen)
            text, total, unknown = format_estimates(f"  ({spec_path})",
                                                    [est.cell(c) for c in cells])
            echo(text)
            grand += total or 0.0
            grand_unknown |= unknown or total is None
            continue
        if launcher != "local" or nproc > 1:
            rc = dispatch(str(spec_path), spec, cells, opts,
                          {"partition": slurm_partition, "time": slurm_time, "gpus": slurm_gpus,
                           "array_parallelism": slurm_array_parallelism,
                           "site_config": site_config}, echo)
            failed_any |= rc != 0
            continue
        runner = Runner(spec, opts)
        summary = runner.run(cells)
        echo(f"\nsummary: {len(summary.done)} done, {len(summary.skipped)} already done, "
             f"{len(summary.failed)} not ok → {runner.csv}")
        for cid, status, err in summary.failed:
            echo(f"  {status:<9} {cid}:\n{indent(err, '      ')}")
        failed_any |= not summary.ok
    if dry_run:
        echo(f"\ntotal over {len(specs)} table(s): "
             + (f"{grand:,.2f} GPU-h" if throughput or grand else "no time estimate "
                "(pass --throughput IMG_PER_S)")
             + (" (some cells unknown)" if grand_unknown and grand else ""))
        return
    if failed_any:
        sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--paper-texts", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of the papers' plain texts (<paper id>.txt): also check that every "
                   "`source:` quote and `replaces:` text is found in the paper.")
def validate(paths, paper_texts=None):
    """Validate specs (default: every papers/*/table*.yaml)."""
    from .errors import SpecError
    from .spec import find_specs, load_spec

    files = find_specs(list(paths) or None)
    if not files:
        raise click.UsageError("no spec files found (looked for papers/*/table*.yaml)")
    bad = 0
    for f in files:
        try:
            s = load_spec(f, check_methods=True)
            if paper_texts:
                from .quotes import check_quotes, paper_text

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


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["csv", "markdown"]), default="csv",
              show_default=True)
def published(paths, fmt):
    """Print every published number of the specs (long format)."""
    import pandas as pd

    from .spec import find_specs, load_spec

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
        from .report.published import published_markdown

        click.echo(published_markdown(df, captions), nl=False)
        return
    click.echo(df.to_csv(index=False), nl=False)


@main.command()
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
    from .report.build import build_report
    from .spec import find_specs

    if not find_specs(list(spec_paths) or None):
        where = ", ".join(spec_paths) if spec_paths else f"{Path('papers').resolve()}/*/table*.yaml"
        raise click.UsageError(f"no spec files found (looked for {where}). Run `reid-bench "
                               "report` from the repository root, or name the specs with --specs.")
    out = Path(out) if out else Path(results_dir) / "report"
    index = build_report(Path(results_dir), out, list(spec_paths) or None, fmt=fmt)
    click.echo(f"report written: {index}")


@main.command()
@click.argument("results_a", type=click.Path(file_okay=False, exists=True))
@click.argument("results_b", type=click.Path(file_okay=False, exists=True))
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
              show_default=True)
def compare(results_a, results_b, fmt):
    """Two results folders side by side (two GPUs, two commits): per table, row, dataset and
    metric the mean ± std over seeds in each, and the delta B − A."""
    from .compare import compare as compare_folders
    from .compare import format_text

    a, b = Path(results_a), Path(results_b)
    df = compare_folders(a, b)
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", indent=1))
    else:
        click.echo(format_text(df, a, b), nl=False)


@main.command()
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
    from .spec import find_specs, load_spec
    from .status import format_status, table_status

    files = find_specs(list(spec_paths) or None)
    if not files:
        raise click.UsageError("no spec files found (looked for papers/*/table*.yaml)")
    for f in files:
        spec = load_spec(f)
        click.echo(format_status(spec, table_status(spec, Path(results_dir), smoke=smoke,
                                                    seeds=seeds, tier=tier),
                                 verbose=not brief))


def _register_weights() -> None:
    from .weights.cli import weights

    main.add_command(weights)


_register_weights()


@main.group()
def data():
    """Dataset utilities."""


@data.command("check")
@click.argument("names", nargs=-1)
@click.option("--data-root", type=click.Path(file_okay=False), default=None)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for derived files (default: $REID_BENCH_CACHE, else "
                   "~/.cache/reid-bench); the data root is only read.")
@click.option("--deep", is_flag=True,
              help="Decode every image fully (progress bar); default: open each header.")
def data_check(names, data_root, cache_dir=None, deep=False):
    """Find and validate datasets (default: every registered dataset)."""
    from .cache_dir import use_cache_dir
    from .data_check import check_datasets, format_check_table

    use_cache_dir(cache_dir)
    rows, ok = check_datasets(list(names) or None, data_root, deep=deep, progress=deep)
    click.echo(format_check_table(rows))
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
