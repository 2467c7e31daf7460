"""What a launcher adds to the runner's path of a cell, as explicit callbacks
(``run/launch/worker.py``: the torchrun leader tells the other ranks when a training starts and
logs each cell's start and end for the launcher)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..store.outcome import CellOutcome, Prepared
from ..table.plan import Cell


@dataclass(frozen=True)
class CellHooks:
    """Callbacks of ``Runner``; None: nothing. ``on_start(cell)`` before a leased cell runs;
    ``before_fit(prepared)`` before its model is trained or loaded from the artefact cache (not
    when it is reused from memory); ``on_outcome(outcome)`` after the outcome is recorded (it
    may raise to stop the run); ``on_preempted(cell, exc)`` when a signal stopped the cell
    (``core.preempt.Preempted``, re-raised after the hook)."""

    on_start: Callable[[Cell], None] | None = None
    before_fit: Callable[[Prepared], None] | None = None
    on_outcome: Callable[[CellOutcome], None] | None = None
    on_preempted: Callable[[Cell, BaseException], None] | None = None
