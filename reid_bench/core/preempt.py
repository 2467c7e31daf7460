"""Stop a training at the next step boundary when asked to by a signal (preemption, timeout,
Ctrl-C), so its checkpoint holds every finished step.

Slurm sends SIGTERM (or the ``--signal`` of the job, SIGUSR1/SIGUSR2) before it kills a
preempted or timed-out job; Ctrl-C is SIGINT. While ``train_stage`` runs (``catching``), these
signals only set a flag; the loop checks ``requested()`` after each optimiser step, saves its
checkpoint and raises ``Preempted``. A second signal while it stops goes to the handler that was
there before (Ctrl-C twice: ``KeyboardInterrupt`` at once). A signal that arrives after the
stage's last step is re-delivered to the previous handler when the stage ends, so it is never
swallowed. The process then exits with ``EXIT_PREEMPTED``, which the launchers read as "stopped
on request, resume me", never as a failed cell.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# sysexits.h EX_TEMPFAIL: "a temporary failure; the user is invited to retry".
EXIT_PREEMPTED = 75

SIGNALS: tuple[signal.Signals, ...] = tuple(
    s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGUSR1", "SIGINT")) if s)


class Preempted(BaseException):
    """A training stopped on a signal at a step boundary. A ``BaseException`` (like
    ``KeyboardInterrupt``): no ``except Exception`` records it as the cell's failure.
    ``checkpoint``: where its state was saved (None: the stage keeps no checkpoint)."""

    def __init__(self, signame: str, stage: str, step: int, checkpoint: Path | None):
        self.signame, self.stage, self.step, self.checkpoint = signame, stage, step, checkpoint
        saved = (f"checkpoint saved to {checkpoint}" if checkpoint is not None
                 else "this stage keeps no checkpoint: it restarts")
        super().__init__(f"{signame}: training stopped after step {step} of [{stage}]; {saved}")


_state: dict[str, object] = {"signum": None, "extra": ()}


def requested() -> int | None:
    """The signal number that asked the running training to stop, or None."""
    return _state["signum"]  # type: ignore[return-value]


def signal_name(signum: int | None) -> str:
    """``SIGTERM``, ``Ctrl-C (SIGINT)``...; "signal" when unknown."""
    if not signum:
        return "signal"
    name = signal.Signals(signum).name
    return f"Ctrl-C ({name})" if signum == signal.SIGINT else name


@contextlib.contextmanager
def also_catching(*signums: int) -> Iterator[None]:
    """Treat ``signums`` too as a request to stop inside ``catching`` (the Slurm launcher adds
    submitit's preemption signal, SIGUSR2 by default)."""
    old = _state["extra"]
    _state["extra"] = tuple(old) + tuple(signums)  # type: ignore[arg-type]
    try:
        yield
    finally:
        _state["extra"] = old


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Within: the stop signals set ``requested()`` instead of their usual effect. Outside the
    main thread (signal handlers cannot be set there) this does nothing. On leaving with a
    request nobody served (the stage ended first), the signal goes to the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = tuple(dict.fromkeys(SIGNALS + tuple(_state["extra"])))  # type: ignore[operator]
    previous = {s: signal.getsignal(s) for s in sigs}

    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:
            # A data-loader worker forked inside the stage inherits this handler: it leaves
            # the stop to the training process, which shuts its workers down.
            return
        if _state["signum"] is not None:  # asked twice: the usual effect, now
            _restore(previous)
            signal.raise_signal(signum)
            return
        _state["signum"] = signum
        log.warning("%s received: stopping after this training step and saving a checkpoint "
                    "(send it again to stop at once, without saving)", signal_name(signum))

    _state["signum"] = None
    for s in sigs:
        signal.signal(s, handler)
    served = False
    try:
        yield
    except Preempted:
        served = True
        raise
    finally:
        pending = _state["signum"]
        _state["signum"] = None
        _restore(previous)
        if pending is not None and not served:
            signal.raise_signal(pending)  # type: ignore[arg-type]


def stopping_at_step_boundaries(fn: Callable) -> Callable:
    """Run ``fn`` (a training loop that checks ``requested()`` between steps) inside
    ``catching``."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with catching():
            return fn(*args, **kwargs)

    return wrapper


def _restore(previous: dict) -> None:
    for s, h in previous.items():
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(s, h if h is not None else signal.SIG_DFL)
