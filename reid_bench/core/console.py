"""What a user sees on the console while a table runs: tqdm progress bars and the logging
handler that prints the library's log records.

The library only logs (``logging.getLogger(__name__)``); the edge decides where records go:
the CLI installs ``ConsoleHandler`` with ``configure`` (click output), a launched worker
process with ``ensure``. Every progress bar goes through ``progress``: drawn on stderr, only on a
terminal and never once the console is configured ``quiet`` (``--quiet``); a log line written
while a bar is shown clears it first and the bar is redrawn below (``tqdm.external_write_mode``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

LIBRARY = "reid_bench"
# Per-epoch and per-stage lines (the training loop and the methods): what ``--quiet`` hides.
TRAINING_LOGGERS = ("reid_bench.engine.train", "reid_bench.models")
# ``configure(quiet=True)`` (the CLI's --quiet): no bar anywhere until restored.
_state = {"quiet": False}


def _terminal() -> bool:
    return sys.stderr.isatty()


def bars_enabled(quiet: bool = False) -> bool:
    """Whether progress bars are drawn: not under ``quiet`` or a console configured quiet
    (``--quiet``), and only when stderr is a terminal (logs redirected to a file keep their
    plain lines)."""
    return not quiet and not _state["quiet"] and _terminal()


def progress(iterable: Iterable, *, desc: str, unit: str, enabled: bool = True,
             leave: bool = False, total: int | None = None) -> Any:
    """``iterable`` wrapped in a tqdm bar (count of ``total``, default ``len(iterable)``;
    rate, ETA) on stderr when ``enabled`` and ``bars_enabled()``; otherwise ``iterable``
    itself."""
    if not enabled or not bars_enabled():
        return iterable
    from tqdm import tqdm

    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)


class ConsoleHandler(logging.Handler):
    """Hands each formatted record to ``echo`` (``err`` for warnings and errors, when given),
    clearing any progress bar around the write."""

    def __init__(self, echo: Callable[[str], None], err: Callable[[str], None] | None = None):
        super().__init__()
        self.echo, self.err = echo, err
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        out = self.err if self.err is not None and record.levelno >= logging.WARNING \
            else self.echo
        try:
            msg = self.format(record)
            with tqdm.external_write_mode():
                out(msg)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 — a console error must never reach the training
            self.handleError(record)


def configure(echo: Callable[[str], None], *, err: Callable[[str], None] | None = None,
              quiet: bool = False, level: int = logging.INFO) -> Callable[[], None]:
    """Send the library's records at ``level`` and above to ``echo`` (``err``: warnings and
    errors), replacing a console handler installed before. ``quiet``: the training loop's and
    the methods' per-epoch/per-stage lines are dropped (warnings still show) and no progress
    bar is drawn; one line per cell stays. Returns a function that restores the previous
    handlers, levels and quiet setting."""
    names = (LIBRARY, *TRAINING_LOGGERS)
    was_quiet, _state["quiet"] = _state["quiet"], quiet
    saved = {n: logging.getLogger(n).level for n in names}
    lib = logging.getLogger(LIBRARY)
    old = [h for h in lib.handlers if isinstance(h, ConsoleHandler)]
    for h in old:
        lib.removeHandler(h)
    handler = ConsoleHandler(echo, err)
    lib.addHandler(handler)
    lib.setLevel(level)
    for name in TRAINING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)

    def restore() -> None:
        _state["quiet"] = was_quiet
        lib.removeHandler(handler)
        for h in old:
            lib.addHandler(h)
        for n, lvl in saved.items():
            logging.getLogger(n).setLevel(lvl)

    return restore


def ensure(*, quiet: bool = False, silent: bool = False) -> None:
    """In a launched worker process: print the library's records to stdout unless a handler
    is already installed (the CLI's, in-process). ``silent``: warnings and errors only (the
    non-zero ranks of a DDP job)."""
    if any(isinstance(h, ConsoleHandler) for h in logging.getLogger(LIBRARY).handlers):
        return

    def echo(msg: str) -> None:
        print(msg, flush=True)

    configure(echo, quiet=quiet, level=logging.WARNING if silent else logging.INFO)


def output_safe(log: Any, on_close: Any = None) -> Any:
    """``log`` wrapped so that an output error (``run … | head`` closing the pipe: broken pipe,
    EPIPE, a closed or full terminal) never propagates into the cell being run, where it would
    be recorded as the cell's failure. After the first such error the console stays quiet and
    the run goes on writing results; one notice goes to stderr if it is still open.
    ``on_close()`` runs once then (the CLI points stdout at /dev/null with ``quiet_stdout``).
    """
    if getattr(log, "_output_safe", False):
        return log
    state = {"closed": False}

    def safe(msg: str) -> None:
        if state["closed"]:
            return
        try:
            log(msg)
        except (BrokenPipeError, ValueError, OSError) as exc:
            if isinstance(exc, ValueError) and "closed file" not in str(exc):
                raise
            state["closed"] = True
            if on_close is not None:
                on_close()
            import sys

            try:
                print(f"reid-bench: console output closed ({type(exc).__name__}); the run "
                      "continues and still records every result", file=sys.stderr)
            except (OSError, ValueError):
                pass

    safe._output_safe = True  # type: ignore[attr-defined]
    return safe


def quiet_stdout() -> None:
    # Point stdout at /dev/null so the interpreter's final flush does not raise again.
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
