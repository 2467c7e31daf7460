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
@click.argument("spec_path", type=click.Path(dir_okay=False))
@click.option("--rows", "rows", multiple=True, help="Run only this row (repeatable).")
@click.option("--seeds", type=click.IntRange(1), default=None,
              help="Number of seeds (0..N-1); default: the spec's `seeds`.")
@click.option("--smoke", is_flag=True,
              help="Synthetic stand-in dataset and the spec's shrunk recipe (CPU minutes). "
                   "Results are labelled synthetic everywhere.")
@click.option("--dry-run", is_flag=True, help="Print the plan and exit.")
@click.option("--results-dir", type=click.Path(file_okay=False), default="results",
              show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Dataset root (default: $REID_BENCH_DATA, else ./data).")
@click.option("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available).")
@click.option("--force", is_flag=True, help="Recompute finished cells.")
@click.option("--num-workers", type=click.IntRange(0), default=0, show_default=True,
              help="Data loader worker processes.")
@click.option("--checkpoint-every", type=click.IntRange(0), default=5, show_default=True,
              help="Save a resumable training checkpoint every N epochs (0: never).")
@click.option("--deterministic", is_flag=True, help="torch deterministic algorithms.")
@click.option("--amp/--no-amp", "amp", default=None,
              help="Mixed precision autocast (default: on for CUDA — bf16, or fp16 with grad "
                   "scaling on GPUs without bf16 — off on CPU).")
@click.option("--amp-dtype", type=click.Choice(["bf16", "fp16"]), default=None,
              help="Autocast dtype (default: the device's best).")
@click.option("--channels-last/--no-channels-last", "channels_last", default=None,
              help="channels_last memory format (default: on for CUDA, off on CPU).")
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
def run(spec_path, rows, seeds, smoke, dry_run, results_dir, data_root, device, force,
        num_workers, checkpoint_every, deterministic, amp=None, amp_dtype=None,
        channels_last=None, compile_=False, launcher="local", nproc=1, slurm_partition=None,
        slurm_time=None, slurm_gpus=None, slurm_array_parallelism=None, site_config=None,
        weights=()):
    """Train and evaluate every runnable row of SPEC_PATH; write results/<paper>/<table>.csv."""
    import torch

    from .runner import Runner, RunOptions, plan
    from .spec import load_spec

    spec = load_spec(spec_path)
    try:
        cells = plan(spec, rows=list(rows) or None, seeds=seeds, smoke=smoke)
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    quoted = sum(1 for r in spec.rows if not r.runnable)
    click.echo(f"{spec.paper.id}/{spec.table.id}: {len(cells)} cell(s) to plan "
               f"({quoted} quoted row(s) not runnable){' — SMOKE, synthetic data' if smoke else ''}")
    if dry_run:
        for c in cells:
            col = spec.datasets[c.dataset]
            split = "" if c.split is None else f"split {c.split:<3}"
            click.echo(f"  {c.row.name:<28} {c.dataset:<14} {split}seed {c.seed}  "
                       f"method={c.row.method}"
                       f"  protocol={col.eval.protocol}")
        return
    from .launch.dispatch import accel_options, dispatch
    from .weights import parse_overrides

    opts = RunOptions(results_dir=Path(results_dir), data_root=data_root,
                      device=device, smoke=smoke, force=force,
                      num_workers=num_workers, checkpoint_every=checkpoint_every,
                      deterministic=deterministic, log=click.echo,
                      accel=accel_options(amp, amp_dtype, channels_last, compile_),
                      launcher=launcher, nproc=nproc, weights=parse_overrides(weights))
    if launcher != "local" or nproc > 1:
        sys.exit(dispatch(spec_path, spec, cells, opts,
                          {"partition": slurm_partition, "time": slurm_time, "gpus": slurm_gpus,
                           "array_parallelism": slurm_array_parallelism,
                           "site_config": site_config}, click.echo))
    runner = Runner(spec, opts)
    summary = runner.run(cells)
    click.echo(f"\nsummary: {len(summary.done)} done, {len(summary.skipped)} already done, "
               f"{len(summary.failed)} not ok → {runner.csv}")
    for cid, status, err in summary.failed:
        click.echo(f"  {status:<9} {cid}: {err.splitlines()[0] if err else ''}")
    if not summary.ok:
        sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
def validate(paths):
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

    recs = []
    for f in find_specs(list(paths) or None):
        s = load_spec(f)
        for r in s.rows:
            for ds, metrics in r.published.items():
                for m, v in metrics.items():
                    recs.append({"paper": s.paper.id, "table": s.table.id, "row": r.name,
                                 "dataset": ds, "metric": m, "value": v,
                                 "runnable": r.runnable})
    df = pd.DataFrame(recs, columns=["paper", "table", "row", "dataset", "metric", "value",
                                     "runnable"])
    click.echo(_markdown(df) if fmt == "markdown" else df.to_csv(index=False), nl=False)


def _markdown(df) -> str:
    head = "| " + " | ".join(df.columns) + " |\n| " + " | ".join("---" for _ in df.columns) + " |\n"
    body = "".join("| " + " | ".join("" if v is None or v != v else str(v) for v in r) + " |\n"
                   for r in df.itertuples(index=False))
    return head + body


@main.command()
@click.option("--results-dir", type=click.Path(file_okay=False), default="results",
              show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: <results-dir>/report).")
@click.option("--specs", "spec_paths", multiple=True, help="Spec files/folders (default: papers/).")
@click.option("--format", "fmt", type=click.Choice(["html", "markdown", "json"]), default="html",
              show_default=True,
              help="html: static site (index.html + one page per table); markdown: report.md; "
                   "json: summary.json for scripts.")
def report(results_dir, out, spec_paths, fmt):
    """Render the report: published vs reproduced, verdicts and claims for every table."""
    from .report.build import build_report

    out = Path(out) if out else Path(results_dir) / "report"
    index = build_report(Path(results_dir), out, list(spec_paths) or None, fmt=fmt)
    click.echo(f"report written: {index}")


@main.command()
@click.argument("spec_paths", nargs=-1, type=click.Path())
@click.option("--results-dir", type=click.Path(file_okay=False), default="results",
              show_default=True)
@click.option("--smoke", is_flag=True, help="Status of the --smoke cells.")
@click.option("--seeds", type=click.IntRange(1), default=None,
              help="Number of seeds planned (default: the spec's `seeds`).")
@click.option("--brief", is_flag=True, help="Only the per-table counts.")
def status(spec_paths, results_dir, smoke, seeds, brief):
    """Pending / running / done / failed cells of each table (default: every papers/ spec)."""
    from .spec import find_specs, load_spec
    from .status import format_status, table_status

    files = find_specs(list(spec_paths) or None)
    if not files:
        raise click.UsageError("no spec files found (looked for papers/*/table*.yaml)")
    for f in files:
        spec = load_spec(f)
        click.echo(format_status(spec, table_status(spec, Path(results_dir), smoke=smoke,
                                                    seeds=seeds), verbose=not brief))


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
def data_check(names, data_root):
    """Find and validate datasets (default: every registered dataset)."""
    from .data_check import check_datasets, format_check_table

    rows, ok = check_datasets(list(names) or None, data_root)
    click.echo(format_check_table(rows))
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
