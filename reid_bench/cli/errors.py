"""The one way the CLI reports a problem on stderr: ``error: <what, where, how to fix>`` for
anything that stops a command (click's usage errors, a ``ReidBenchError`` from the library,
a command's own refusal), ``warning: <…>`` for what lets it go on.

Click would print its own errors as ``Error: …``; ``Group`` in ``cli/__init__.py`` hands every
``click.ClickException`` and ``ReidBenchError`` to ``show`` instead, so there is one prefix.
"""

from __future__ import annotations

import click

ERROR = "error: "
# click >= 8.2 raises this for a group given no command (``reid-bench``, ``reid-bench data``).
_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
WARNING = "warning: "


def error_line(message: str) -> None:
    """Print ``error: message`` on stderr (the command decides whether it goes on)."""
    click.echo(f"{ERROR}{message}", err=True)


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr."""
    click.echo(f"{WARNING}{message}", err=True)


def show(exc: Exception) -> int:
    """Print ``exc`` the CLI's way and return the exit code it asks for: a usage error (bad or
    missing option, bad value) first shows the command's usage line and where help is, like
    click; every message gets the ``error:`` prefix. A ``ReidBenchError`` (bad input found by
    the library) exits 2, like a usage error."""
    if isinstance(exc, _HELP):  # a group run without a command: its help, not an error
        exc.show()
        return exc.exit_code
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        ctx = exc.ctx
        click.echo(f"{ctx.get_usage()}\nTry '{ctx.command_path} --help' for help.\n", err=True)
    message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
    error_line(message)
    return exc.exit_code if isinstance(exc, click.ClickException) else 2
