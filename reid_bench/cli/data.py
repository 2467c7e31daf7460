"""``reid-bench data``: dataset utilities."""

from __future__ import annotations

import sys

import click


@click.group()
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
    from ..core.cache_dir import use_cache_dir
    from ..data.check import check_datasets, format_check_table

    use_cache_dir(cache_dir)
    rows, ok = check_datasets(list(names) or None, data_root, deep=deep, progress=deep)
    click.echo(format_check_table(rows))
    if not ok:
        sys.exit(1)
