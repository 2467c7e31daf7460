"""``reid-bench verify``: check every results row against its cell JSON and its stored model
(``reid_bench.run.verify``), optionally evaluating the stored models again."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("results_dir", required=False, default="results",
                type=click.Path(file_okay=False, exists=True))
@click.option("--reevaluate", is_flag=True,
              help="Also evaluate each ok row's stored model again and compare the numbers "
                   "(no training; needs the row's dataset, and its spec under --specs).")
@click.option("--specs", "spec_paths", multiple=True, type=click.Path(),
              help="Spec files or folders for --reevaluate (default: papers/*/table*.yaml).")
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Dataset root for --reevaluate (default: $REID_BENCH_DATA, else ./data).")
@click.option("--device", default="cpu", show_default=True, help="Device for --reevaluate.")
@click.option("--artifacts-dir", type=click.Path(file_okay=False), default=None,
              help="Where the run kept its trained models, when it was given `run "
                   "--artifacts-dir` (default: RESULTS_DIR/_artifacts).")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.01, show_default=True,
              help="Largest difference, in percentage points, a re-evaluated metric may have.")
def verify(results_dir, reevaluate, spec_paths, data_root, device, tolerance,
           artifacts_dir=None):
    """Check that every row of RESULTS_DIR (default: results) is what the runner wrote: its
    digest, its cell JSON, its stored model's training record and files (sha256); with
    --reevaluate, that the stored model gives the row's numbers. Exit 1 if any row fails."""
    from ..run.verify import verify_folder

    checks = verify_folder(Path(results_dir), reevaluate=reevaluate,
                           spec_paths=list(spec_paths) or None,
                           data_root=Path(data_root) if data_root else None, device=device,
                           tolerance=tolerance,
                           artifacts_dir=Path(artifacts_dir) if artifacts_dir else None)
    bad = 0
    for c in checks:
        if c.problem:
            bad += 1
            click.echo(f"FAIL  {c.label}\n      {c.problem}")
        else:
            again = (" — re-evaluated: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                     sorted(c.reevaluated.items()))
                     if c.reevaluated else "")
            click.echo(f"ok    {c.label}{again}")
    click.echo(f"\n{len(checks) - bad} of {len(checks)} row(s) verified"
               + (", numbers re-evaluated from the stored models" if reevaluate else "")
               + (f"; {bad} FAILED" if bad else ""))
    if bad:
        sys.exit(1)
