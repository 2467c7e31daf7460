"""TensorBoard event files of a training history (optional: ``pip install 'reid-bench[tb]'``).

Tags: ``train/<term>`` (epoch rows), ``steps/<term>`` (rows every N steps), ``monitor/<metric>``
(monitoring evaluations, not the result), each at the stage's optimisation step, one folder
per stage."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .csvfile import Row

EXTRA = "reid-bench[tb]"
_SKIP = ("stage", "kind", "epoch", "step", "epochs")


class TensorBoardMissing(ImportError):
    pass


def require() -> None:
    """Raise ``TensorBoardMissing`` (a one-line message naming the extra) when the tensorboard
    package is not installed."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise TensorBoardMissing(f"TensorBoard output needs the tensorboard package: "
                                 f"pip install '{EXTRA}' (or pip install tensorboard)") from None


def open_writer(folder: Path, purge_step: int | None = None) -> Any:
    """A ``SummaryWriter`` on ``folder``; ``purge_step``: drop its events from that step on
    (a resumed stage)."""
    require()
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True, exist_ok=True)
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


def write_row(writer: Any, row: Row, *, flush: bool = True) -> None:
    """One history row as scalars at its step (``flush``: to disk now)."""
    prefix = {"epoch": "train", "steps": "steps", "monitor": "monitor"}[row["kind"]]
    for k, v in row.items():
        if k in _SKIP or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        writer.add_scalar(f"{prefix}/{k}", float(v), int(row["step"]))
    if flush:
        writer.flush()


def write_rows(rows: Sequence[Row], folder: Path) -> int:
    """Write ``rows`` (one training's history) under ``folder``, one sub-folder per stage.
    Returns the number of rows written."""
    writers: dict[str, Any] = {}
    try:
        for r in rows:
            st = "".join(c if c.isalnum() or c in "-_." else "_" for c in r["stage"])
            if st not in writers:
                writers[st] = open_writer(folder / st)
            write_row(writers[st], r, flush=False)
    finally:
        for w in writers.values():
            w.close()
    return len(rows)
