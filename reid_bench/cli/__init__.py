"""``reid-bench``: run a paper table, report it against the published numbers.

The click command line is the edge of the program: it parses and checks arguments, configures
console output (``reid_bench.core.console``) and calls the library, which never prints. One module
per group of commands: ``run`` (train and evaluate tables), ``tables`` (validate, published,
report, compare, status), ``data`` (dataset checks), ``curves`` (training histories to
TensorBoard), ``weights``, ``verify``.

One grammar (``docs/cli.md``): the specs a command reads are its positional arguments,
``--tier`` names a tier (``--smoke`` / ``--shakedown`` / ``--smoke-recipe`` for short),
``--quiet`` hides progress, every problem is printed as ``error: …`` (``cli/errors.py``) and
an old option spelling works for one more release with a warning (``cli/deprecation.py``).
Importing this package imports no torch: ``reid-bench --version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import click

from ..core.errors import ReidBenchError
from .deprecation import Group
from .errors import show


class _Main(Group):
    """The ``reid-bench`` group: every click error and ``ReidBenchError`` is printed by
    ``errors.show`` (one ``error:`` prefix, no traceback) and exits with its code."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as exc:  # an error in the group's own options
            raise click.exceptions.Exit(show(exc)) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, ReidBenchError) as exc:
            raise click.exceptions.Exit(show(exc)) from None


@click.group(cls=_Main)
@click.version_option(package_name="reid-bench", prog_name="reid-bench",
                      help="Print the version and exit (imports no torch).")
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
