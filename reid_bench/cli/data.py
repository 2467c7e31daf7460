"""``reid-bench data``: dataset utilities."""

from __future__ import annotations

import logging
import sys

import click

from .deprecation import Group


@click.group(cls=Group)
def data():
    """Dataset utilities."""


@data.command("check")
@click.argument("names", nargs=-1)
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Dataset root (default: $REID_BENCH_DATA, else ./data); only read.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for derived files (default: $REID_BENCH_CACHE, else "
                   "~/.cache/reid-bench); the data root is only read.")
@click.option("--deep", is_flag=True,
              help="Decode every image fully (progress bar); default: open each header.")
@click.option("--quiet", is_flag=True, help="No progress bar; only the table of datasets.")
def data_check(names, data_root, cache_dir=None, deep=False, quiet=False):
    """Find and validate datasets NAMES (default: every registered dataset)."""
    from ..core.cache_dir import use_cache_dir
    from ..core.console import configure
    from ..data.check import check_datasets, format_check_table

    # Only warnings are printed (as before); quiet: no progress bar either.
    click.get_current_context().call_on_close(configure(
        click.echo, err=lambda m: click.echo(m, err=True), quiet=quiet, level=logging.WARNING))
    use_cache_dir(cache_dir)
    rows, ok = check_datasets(list(names) or None, data_root, deep=deep, progress=deep)
    click.echo(format_check_table(rows))
    if not ok:
        sys.exit(1)
