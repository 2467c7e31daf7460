"""``reid-bench run``: plan each spec's cells and train + evaluate them (locally, under
torchrun or on Slurm), or print the plan with estimates (``--dry-run``)."""

from __future__ import annotations

from pathlib import Path

import click

from .deprecation import Command, old_spelling, spec_key_spelling
from .tiers import chosen_tier, tier_options


@click.command(cls=Command)
@click.argument("spec_paths", nargs=-1, required=True, type=click.Path(), metavar="SPECS...")
@click.option("--rows", "rows", multiple=True,
              help="Run only these rows: names, case-insensitive, comma-separated or repeated.")
@click.option("--datasets", "datasets", multiple=True,
              help="Run only these dataset columns (column id, dataset name or label; "
                   "case-insensitive, comma-separated or repeated).")
@click.option("--num-seeds", "num_seeds", type=click.IntRange(1), default=None,
              help="Number of seeds, run as seeds 0..N-1 (default: the spec's `seeds`).")
@old_spelling("--seeds", "--num-seeds", "num_seeds", type=click.IntRange(1))
@click.option("--splits", "splits", default=None, metavar="0-4|0,3,7",
              help="Run only these partitions of columns that have several (CUHK03 classic: "
                   "20, each its own training). The report shows such a column as partial "
                   "(◐ k/n partitions), never as the table's number, until all have run.")
@tier_options(
    tier_help="The tier to run: full (the paper's recipe on your data; default), smoke, "
              "shakedown or smoke_recipe (see their shorthands below).",
    smoke_help="--tier smoke: synthetic stand-in dataset and the spec's shrunk recipe (CPU "
               "minutes). Results are labelled synthetic everywhere.",
    smoke_recipe_help="--tier smoke_recipe: the spec's shrunk recipe on YOUR real data "
                      "(labelled so in CSV and report, never compared as a reproduction).",
    shakedown_help="--tier shakedown: every cell of the real run with the full recipe (input "
                   "size, width, batch sizes, every stage), each stage stopped after --shakedown-steps steps, on "
                   "the synthetic stand-in at the recipe's resolution with a small gallery. "
                   "Records step time, first/last loss and peak memory; labelled shakedown "
                   "everywhere, never a reproduction.")
@click.option("--shakedown-steps", type=click.IntRange(1), default=2, show_default=True,
              help="Optimisation steps per training stage under --tier shakedown.")
@click.option("--shakedown-pretrained", "shakedown_pretrained",
              type=click.Choice(["spec", "none"]), default="spec", show_default=True,
              help="With --tier shakedown: 'none' starts every backbone from random init "
                   "instead of the spec's ImageNet weights (machines without the weights); "
                   "recorded in the CSV.")
@old_spelling("--pretrained", "--shakedown-pretrained", "shakedown_pretrained",
              type=click.Choice(["spec", "none"]))
@click.option("--shakedown-max-batch", "shakedown_max_batch", type=click.IntRange(1),
              default=None,
              help="With --tier shakedown on CPU only: cap every stage's batch size (P×K "
                   "samplers keep P >= 2). Refused on CUDA, where the real batch must be "
                   "proven.")
@old_spelling("--max-batch", "--shakedown-max-batch", "shakedown_max_batch",
              type=click.IntRange(1))
@click.option("--variant", "variants", multiple=True, metavar="KEY=VALUE",
              callback=spec_key_spelling,
              help="Run the rows whose assumed value KEY lists VALUE among its `alternatives`, "
                   "with VALUE in its place (repeatable); KEY is the value's path in the spec "
                   "(recipe.train.lr, params.x, eval.ap, options.x). Results are stored "
                   "beside the main ones under variant `variant:KEY=VALUE`. Evaluation-only "
                   "keys (eval.*) reuse the trained models.")
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
              show_default=True,
              help="Results folder: <paper>/<table>.csv per spec, cell records beside them.")
@click.option("--artifacts-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of trained-model artefacts (default: RESULTS_DIR/_artifacts); runs "
                   "into different results folders that share it reuse trained models "
                   "(give `verify` the same --artifacts-dir).")
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
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", callback=spec_key_spelling,
              help="Override a recipe value by its path in the spec, e.g. --set "
                   "recipe.train.lr=0.02 (repeatable; value parsed as YAML). Validated like "
                   "the spec; the results are keyed and labelled as deviating from the "
                   "paper's recipe.")
def run(spec_paths, rows, num_seeds, tier, smoke, dry_run, results_dir, data_root, device,
        force, num_workers, checkpoint_every, deterministic, shakedown=False, shakedown_steps=2,
        shakedown_pretrained="spec", shakedown_max_batch=None, precision="fp32",
        channels_last=False, compile_=False, launcher="local", nproc=1, slurm_partition=None,
        slurm_time=None, slurm_gpus=None, slurm_array_parallelism=None, site_config=None,
        sets=(), variants=(), datasets=(), smoke_recipe=False, subset=False, throughput=None,
        cache_dir=None, checkpoint_minutes=10.0, quiet=False, weights=(), splits=None,
        log_every_steps=None, eval_every=0, tensorboard=None, artifacts_dir=None):
    """Train and evaluate every runnable row of each of SPECS (files, or folders of
    table*.yaml); write results/<paper>/<table>.csv per spec."""
    import torch

    from ..core.cache_dir import use_cache_dir
    from ..core.console import configure as configure_console
    from ..core.console import output_safe, quiet_stdout
    from ..run.runner import RunOptions
    from ..spec import load_spec
    from ..table.overrides import parse_sets
    from ..table.selection import (
        dataset_choices,
        expand_spec_paths,
        match,
        parse_splits,
        row_choices,
        split_names,
    )
    from ..table.shakedown import ShakedownOptions, check_device
    from .run_tables import Selection, run_tables

    tier = chosen_tier(tier, smoke, shakedown, smoke_recipe) or "full"
    if tier in ("smoke", "shakedown") and subset:
        raise click.UsageError("--subset describes real data; --tier smoke and --tier shakedown "
                               "use the synthetic stand-in")
    if tier != "shakedown" and (shakedown_pretrained != "spec" or shakedown_max_batch is not None):
        raise click.UsageError("--shakedown-pretrained and --shakedown-max-batch belong to "
                               "--tier shakedown runs")
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
    overrides = parse_sets(sets)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    shake = (ShakedownOptions(steps=shakedown_steps, pretrained=shakedown_pretrained,
                              max_batch=shakedown_max_batch) if tier == "shakedown" else None)
    check_device(shake, device)
    from ..engine.accel import AccelOptions
    from ..weights import parse_overrides

    opts = RunOptions(results_dir=Path(results_dir), data_root=data_root,
                      device=device, smoke=tier == "smoke", force=force,
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
    run_tables(echo, list(zip(paths, specs, strict=True)), opts,
               Selection(tier=tier, rows=want_rows, datasets=want_ds, splits=want_splits,
                         num_seeds=num_seeds, variants=tuple(variants)),
               dry_run=dry_run, throughput=throughput,
               slurm={"partition": slurm_partition, "time": slurm_time, "gpus": slurm_gpus,
                      "array_parallelism": slurm_array_parallelism, "site_config": site_config})
