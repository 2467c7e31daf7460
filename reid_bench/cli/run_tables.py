"""The tables of one ``reid-bench run``: per spec, plan the selected cells (``--rows``,
``--datasets``, ``--splits``, ``--variant``), then print the plan with estimates
(``--dry-run``), hand them to a launcher, or run them here; then the summary and the exit
code (1: a cell not ok; ``preempt.EXIT_PREEMPTED``: stopped on a signal, resumable)."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import WARNING


@dataclass(frozen=True)
class Selection:
    """Which cells of each spec to run: the tier and the ``--rows``/``--datasets``/
    ``--splits`` choices (None: all), the number of seeds (None: the spec's) and the
    ``--variant`` KEY=VALUE texts."""

    tier: str
    rows: set | None = None
    datasets: set | None = None
    splits: Any = None
    num_seeds: int | None = None
    variants: tuple[str, ...] = ()


LABELS = {"smoke": " — SMOKE, synthetic data", "smoke_recipe": " — SMOKE RECIPE on real data",
          "shakedown": " — SHAKEDOWN, full recipe for a few steps, synthetic data", "full": ""}


def run_tables(echo, tables: list, opts, sel: Selection, *, dry_run: bool,
               throughput: float | None, slurm: dict) -> None:
    """Run (or, ``dry_run``, estimate) the selected cells of each ``(path, spec)`` in
    ``tables`` with the run options ``opts``; ``echo`` prints. Exits 1 when a cell is not ok."""
    from ..core.preempt import EXIT_PREEMPTED, Preempted
    from ..core.textable import text_table
    from ..run.launch.dispatch import dispatch
    from ..run.runner import Runner, indent

    tier, subset = sel.tier, opts.subset
    label = LABELS[tier] + (" — SUBSET of the dataset" if subset else "")
    failed_any, seen = False, {}
    grand = None  # estimate.Totals over every table (--dry-run)
    for spec_path, spec in tables:
        spec, cells, variant = _cells(echo, spec, opts, sel)
        quoted = sum(1 for r in spec.rows if not r.runnable)
        echo(f"{spec.paper.id}/{spec.table.id}: {len(cells)} cell(s) to plan "
             f"({quoted} quoted row(s) not runnable){label}")
        if variant:
            echo(f"variant {variant!r}: results are kept apart from the canonical spec's")
        if not cells:
            continue
        if dry_run:
            from ..run.launch.dry_run import dry_run_lines
            from ..table.estimate import Estimator, Totals, format_estimates

            # The cells as the launcher's workers receive them (every split), then estimates.
            echo("\n".join(dry_run_lines(spec, cells, opts.launcher, opts.nproc)))
            est = Estimator(spec, opts, throughput, seen)
            text, table_totals = format_estimates(f"  ({spec_path})",
                                                  [est.cell(c) for c in cells])
            echo(text)
            grand = grand or Totals()
            grand.add(table_totals)
            continue
        if opts.launcher != "local" or opts.nproc > 1:
            rc = dispatch(str(spec_path), spec, cells, opts, slurm)
            if rc == EXIT_PREEMPTED:
                echo("\nstopped on a signal with the checkpoint saved. To resume, run the same "
                     "command again:\n  " + _again())
                sys.exit(EXIT_PREEMPTED)
            failed_any |= rc != 0
            continue
        from ..store.results import cell_dir, check_writable

        check_writable(cell_dir(Path(opts.results_dir), spec.paper.id, spec.table.id))
        runner = Runner(spec, opts)
        try:
            summary = runner.run(cells)
        except Preempted as exc:
            _stopped(echo, exc, runner.csv)
        elsewhere = (f"{len(summary.running_elsewhere)} being run by another runner, "
                     if summary.running_elsewhere else "")
        echo(f"\nsummary: {len(summary.done)} done, {len(summary.skipped)} already done, "
             f"{elsewhere}{len(summary.failed)} not ok → {runner.csv}")
        heads = text_table(None, [[status, f"{cid}:"] for cid, status, _ in summary.failed],
                           indent="  ", sep=" ")
        for head, (_, _, err) in zip(heads, summary.failed, strict=True):
            echo(f"{head}\n{indent(err, '      ')}")
        failed_any |= not summary.ok
    if dry_run:
        from ..table.estimate import Totals

        echo("\n" + (grand or Totals()).line(f"total over {len(tables)} table(s)"))
        return
    if failed_any:
        sys.exit(1)


def _cells(echo, spec, opts, sel: Selection) -> tuple[Any, list, str]:
    """The selected cells of ``spec`` (and the spec with any ``--variant`` applied) and the
    variant key of its deviations (a spec copy, ``--set`` overrides, a subset)."""
    from ..spec.schedule import schedule_warnings
    from ..store.columns import SHRUNK_TIERS
    from ..table.overrides import compose_variant, set_parts, spec_parts, validate_overrides
    from ..table.plan import plan
    from ..table.selection import select_splits

    shrunk = sel.tier in SHRUNK_TIERS
    # A spec copy, overrides or a subset: own cells, never the canonical ones.
    variant = compose_variant(spec_parts(spec) + set_parts(opts.overrides)
                              + (["subset"] if opts.subset else []))
    names = [r.name for r in spec.rows if sel.rows is None or r.name in sel.rows]
    cells = (plan(spec, rows=names, seeds=sel.num_seeds, tier=sel.tier, variant=variant)
             if names else [])
    if sel.datasets is not None:
        cells = [c for c in cells if c.dataset in sel.datasets]
    if sel.splits is not None:
        cells = select_splits(cells, sel.splits,
                              {cid: col.splits or 0 for cid, col in spec.datasets.items()})
    if not cells:
        return spec, cells, variant
    rows = list({c.row.name: c.row for c in cells}.values())
    validate_overrides(spec, rows, opts.overrides, smoke=shrunk)
    for w in schedule_warnings(spec, rows, opts.overrides, tiers=(shrunk,)):
        echo(f"{WARNING}{w}")
    if sel.variants:
        from ..table.variants import apply_variants

        spec, cells = apply_variants(spec, list(sel.variants), cells, smoke=shrunk)
    return spec, cells, variant


def _again() -> str:
    """The command line this process was started with, quoted for a shell (to resume)."""
    return "reid-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _stopped(echo, exc, csv) -> None:
    """A training stopped on a signal (Ctrl-C, Slurm preemption or timeout) at a step boundary:
    say what was saved and how to resume, and exit with ``preempt.EXIT_PREEMPTED``."""
    from ..core.preempt import EXIT_PREEMPTED

    echo(f"\nstopped: {exc}.\nFinished cells are in {csv}. To resume (finished cells are "
         f"skipped, this training continues after step {exc.step}), run the same command "
         f"again:\n  {_again()}")
    sys.exit(EXIT_PREEMPTED)
