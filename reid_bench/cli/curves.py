"""``reid-bench curves``: what to do with saved training histories (``metrics.csv``)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--to-tensorboard", "to_tb", type=click.Path(file_okay=False), required=True,
              metavar="DIR", help="Write TensorBoard event files, one folder per cell, under DIR.")
def curves(results_dir, to_tb):
    """Convert the training histories saved in RESULTS_DIR (each cell's metrics.csv) to
    TensorBoard event files: `tensorboard --logdir DIR` then shows every cell's curves."""
    from ..history.tensorboard import TensorBoardMissing, require

    try:
        require()
    except TensorBoardMissing as exc:
        raise click.ClickException(str(exc)) from None
    from ..report.tbexport import to_tensorboard

    done = to_tensorboard(Path(results_dir), Path(to_tb))
    for cell, n in done:
        click.echo(f"{cell}: {n} row(s)")
    click.echo(f"{len(done)} cell history(ies) written under {to_tb}"
               + ("" if done else " (none found: run cells first)"))
