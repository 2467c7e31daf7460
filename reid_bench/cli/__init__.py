"""``reid-bench``: run a paper table, report it against the published numbers.

The click command line is the edge of the program: it parses and checks arguments, configures
console output (``reid_bench.core.console``) and calls the library, which never prints. One module
per group of commands: ``run`` (train and evaluate tables), ``tables`` (validate, published,
report, compare, status), ``data`` (dataset checks), ``curves`` (training histories to
TensorBoard); ``weights`` lives with its package.
"""

from __future__ import annotations

import sys

import click

from ..core.errors import ReidBenchError


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


def _register() -> None:
    from .curves import curves
    from .data import data
    from .run import run
    from .tables import compare, published, report, status, validate
    from .verify import verify
    from .weights import weights

    for command in (run, validate, published, report, compare, status, data, weights,
                    curves, verify):
        main.add_command(command)


_register()
