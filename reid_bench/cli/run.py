"""``reid-bench run``: plan each spec's cells and train + evaluate them (locally, under
torchrun or on Slurm), or print the plan with estimates (``--dry-run``)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click


@click.command()
@click.argument("spec_paths", nargs=-1, required=True, type=click.Path())
@click.option("--rows", "rows", multiple=True,
              help="Run only these rows: names, case-insensitive, comma-separated or repeated.")
@click.option("--datasets", "datasets", multiple=True,
              help="Run only these dataset columns (column id, dataset name or label; "
                   "case-insensitive, comma-separated or repeated).")
@click.option("--seeds", type=click.IntRange(1), default=None,
              help="Number of seeds (0..N-1); default: the spec's `seeds`.")
@click.option("--splits", "splits", default=None, metavar="0-4|0,3,7",
              help="Run only these partitions of columns that have several (CUHK03 classic: "
                   "20, each its own training). The report shows such a column as partial "
                   "(◐ k/n partitions), never as the table's number, until all have run.")
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
              help="Training images per second per GPU, for --dry-run time estimates; it "
                   "wins over any measurement. Without it a cell's shakedown rate is used "
                   "when it was measured on a GPU (never a CPU one).")
@click.option("--results-dir", type=click.Path(file_okay=False), default="results",
              show_default=True)
@click.option("--artifacts-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of trained-model artefacts (default: RESULTS_DIR/_artifacts); runs "
                   "into different results folders that share it reuse trained models. "
                   "verify --reevaluate looks only under RESULTS_DIR/_artifacts.")
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
@click.option("--log-every-steps", type=click.IntRange(0), default=None, metavar="N",
              help="Also write a metrics.csv row (mean loss terms, lr, images/s) every N "
                   "optimisation steps besides the row per epoch (0: epoch rows only; "
                   "default: 50 on a terminal, else 0).")
@click.option("--eval-every", type=click.IntRange(0), default=0, show_default=True, metavar="N",
              help="Monitoring: evaluate on the cell's protocol every N epochs and record "
                   "rank-1/mAP in the training history, labelled monitoring. The final epoch "
                   "stays the result (no model selection on the test set); costs one "
                   "evaluation each time.")
@click.option("--tensorboard", "tensorboard", type=click.Path(file_okay=False), default=None,
              envvar="REID_BENCH_TENSORBOARD", metavar="DIR",
              help="Also write TensorBoard event files per cell under DIR "
                   "($REID_BENCH_TENSORBOARD); needs pip install 'reid-bench[tb]'.")
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
              help="YAML of Slurm settings (reid_bench.run.launch.slurm.SlurmConfig); flags win.")
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
        cache_dir=None, checkpoint_minutes=10.0, quiet=False, weights=(), splits=None,
        log_every_steps=None, eval_every=0, tensorboard=None, artifacts_dir=None):
    """Train and evaluate every runnable row of each SPEC (files, or folders of
    table*.yaml); write results/<paper>/<table>.csv per spec."""
    import torch

    from ..core.cache_dir import use_cache_dir
    from ..core.console import configure as configure_console
    from ..core.console import output_safe, quiet_stdout
    from ..core.preempt import EXIT_PREEMPTED, Preempted
    from ..run.runner import Runner, RunOptions, indent
    from ..spec import load_spec
    from ..store.results import SHRUNK_TIERS
    from ..table.overrides import (
        compose_variant,
        parse_sets,
        set_parts,
        spec_parts,
        validate_overrides,
    )
    from ..table.plan import plan
    from ..table.selection import (
        dataset_choices,
        expand_spec_paths,
        match,
        parse_splits,
        row_choices,
        select_splits,
        split_names,
    )
    from ..table.shakedown import ShakedownOptions, check_device

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
    if tensorboard and not dry_run:
        from ..history.tensorboard import TensorBoardMissing, require

        try:
            require()
        except TensorBoardMissing as exc:
            raise click.ClickException(str(exc)) from None
    if log_every_steps is None:
        from ..core.console import bars_enabled

        log_every_steps = 50 if bars_enabled(quiet) else 0
    use_cache_dir(cache_dir)
    paths = expand_spec_paths(spec_paths)
    specs = [load_spec(p) for p in paths]
    want_rows = match(split_names(rows), row_choices(specs), "row") if rows else None
    want_ds = match(split_names(datasets), dataset_choices(specs), "dataset") if datasets else None
    want_splits = parse_splits(splits) if splits is not None else None
    if want_splits is not None and not any(
            col.splits for s in specs for cid, col in s.datasets.items()
            if want_ds is None or cid in want_ds):
        raise click.UsageError("--splits selects partitions (e.g. CUHK03 classic's 20), but "
                               "none of the selected columns has them; drop --splits")
    if not dry_run:
        from ..store.results import check_writable

        # Before any training: a read-only results folder is one line, not a traceback.
        check_writable(Path(results_dir))
    tier = ("smoke" if smoke else "smoke_recipe" if smoke_recipe
            else "shakedown" if shakedown else "full")
    overrides = parse_sets(sets)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    shake = (ShakedownOptions(steps=shakedown_steps, pretrained=pretrained,
                              max_batch=max_batch) if shakedown else None)
    check_device(shake, device)
    from ..engine.accel import AccelOptions
    from ..run.launch.dispatch import dispatch
    from ..weights import parse_overrides

    opts = RunOptions(results_dir=Path(results_dir), data_root=data_root,
                      device=device, smoke=smoke, force=force,
                      num_workers=num_workers, checkpoint_every=checkpoint_every,
                      deterministic=deterministic,
                      accel=AccelOptions(precision=precision, channels_last=channels_last,
                                         compile=compile_),
                      launcher=launcher, nproc=nproc, overrides=overrides,
                      shakedown=shake, subset=subset,
                      checkpoint_minutes=checkpoint_minutes, quiet=quiet,
                      weights=parse_overrides(weights), log_every_steps=log_every_steps,
                      eval_every=eval_every,
                      tensorboard=Path(tensorboard) if tensorboard else None,
                      artifacts_dir=Path(artifacts_dir) if artifacts_dir else None)
    # An output error (`run … | head`) never becomes a cell's failure; the library logs
    # (reid_bench.core.console), printed here as before.
    echo = output_safe(click.echo, on_close=quiet_stdout)
    click.get_current_context().call_on_close(configure_console(
        echo, err=output_safe(lambda m: click.echo(m, err=True)), quiet=quiet))
    label = {"smoke": " — SMOKE, synthetic data", "smoke_recipe": " — SMOKE RECIPE on real data",
             "shakedown": " — SHAKEDOWN, full recipe for a few steps, synthetic data",
             "full": ""}[tier] + (" — SUBSET of the dataset" if subset else "")
    failed_any, seen = False, {}
    grand = None  # estimate.Totals over every table (--dry-run)
    for spec_path, spec in zip(paths, specs, strict=True):
        # A spec copy, overrides or a subset: own cells, never the canonical ones.
        variant = compose_variant(spec_parts(spec) + set_parts(overrides)
                                  + (["subset"] if subset else []))
        names = [r.name for r in spec.rows if want_rows is None or r.name in want_rows]
        cells = plan(spec, rows=names, seeds=seeds, tier=tier, variant=variant) if names else []
        if want_ds is not None:
            cells = [c for c in cells if c.dataset in want_ds]
        if want_splits is not None:
            cells = select_splits(cells, want_splits,
                                  {cid: col.splits or 0 for cid, col in spec.datasets.items()})
        if cells:
            validate_overrides(spec, list({c.row.name: c.row for c in cells}.values()),
                               overrides, smoke=tier in SHRUNK_TIERS)
        if cells:
            from ..spec.schedule import schedule_warnings

            for w in schedule_warnings(spec, list({c.row.name: c.row for c in cells}.values()),
                                       overrides, tiers=(tier in SHRUNK_TIERS,)):
                echo(f"warning: {w}")
        if cells and variants:
            from ..table.variants import apply_variants

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
            from ..run.launch.dry_run import dry_run_lines
            from ..table.estimate import Estimator, format_estimates

            # The cells as the launcher's workers receive them (every split), then estimates.
            echo("\n".join(dry_run_lines(spec, cells, launcher, nproc)))

            from ..table.estimate import Totals

            est = Estimator(spec, opts, throughput, seen)
            text, table_totals = format_estimates(f"  ({spec_path})",
                                                  [est.cell(c) for c in cells])
            echo(text)
            grand = grand or Totals()
            grand.add(table_totals)
            continue
        if launcher != "local" or nproc > 1:
            rc = dispatch(str(spec_path), spec, cells, opts,
                          {"partition": slurm_partition, "time": slurm_time, "gpus": slurm_gpus,
                           "array_parallelism": slurm_array_parallelism,
                           "site_config": site_config})
            if rc == EXIT_PREEMPTED:
                echo("\nstopped on a signal with the checkpoint saved. To resume, run the same "
                     "command again:\n  reid-bench "
                     + " ".join(shlex.quote(a) for a in sys.argv[1:]))
                sys.exit(EXIT_PREEMPTED)
            failed_any |= rc != 0
            continue
        from ..store.results import cell_dir, check_writable

        check_writable(cell_dir(Path(results_dir), spec.paper.id, spec.table.id))
        runner = Runner(spec, opts)
        try:
            summary = runner.run(cells)
        except Preempted as exc:
            _stopped(echo, exc, runner.csv)
        elsewhere = (f"{len(summary.running_elsewhere)} being run by another runner, "
                     if summary.running_elsewhere else "")
        echo(f"\nsummary: {len(summary.done)} done, {len(summary.skipped)} already done, "
             f"{elsewhere}{len(summary.failed)} not ok → {runner.csv}")
        for cid, status, err in summary.failed:
            echo(f"  {status:<9} {cid}:\n{indent(err, '      ')}")
        failed_any |= not summary.ok
    if dry_run:
        from ..table.estimate import Totals

        echo("\n" + (grand or Totals()).line(f"total over {len(specs)} table(s)"))
        return
    if failed_any:
        sys.exit(1)


def _stopped(echo, exc, csv) -> None:
    """A training stopped on a signal (Ctrl-C, Slurm preemption or timeout) at a step boundary:
    say what was saved and how to resume, and exit with ``preempt.EXIT_PREEMPTED``."""
    from ..core.preempt import EXIT_PREEMPTED

    again = "reid-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    echo(f"\nstopped: {exc}.\nFinished cells are in {csv}. To resume (finished cells are "
         f"skipped, this training continues after step {exc.step}), run the same command "
         f"again:\n  {again}")
    sys.exit(EXIT_PREEMPTED)
