"""What a torchrun job leaves behind for its launcher: which cell it was on, and the traceback
of any rank that failed.

The launcher (``torchrun.run_torchrun``) gives each job a folder in ``$REID_BENCH_JOB_DIR``.
Rank 0 appends ``progress.jsonl`` (one ``start``/``end`` event per cell it runs); any rank that
fails writes ``rank<R>.json`` (its traceback and the cell it was on) before exiting non-zero.
After the job, the launcher reads them to record the cell that was running when a rank
failed — with that rank's traceback — and relaunches the cells that had not started.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...table.plan import CellKey

JOB_ENV = "REID_BENCH_JOB_DIR"
PROGRESS = "progress.jsonl"


def job_dir() -> Path | None:
    """This job's folder (None outside a launcher-managed job)."""
    d = os.environ.get(JOB_ENV)
    return Path(d) if d else None


def log_event(event: str, key: CellKey, **extra: Any) -> None:
    """Append ``{"event", "cell": key.as_dict(), "t", ...}`` to the job's progress file (no-op
    outside a job). Flushed and synced: the process may be killed right after."""
    d = job_dir()
    if d is None:
        return
    line = json.dumps({"event": event, "cell": key.as_dict(), "t": time.time(),
                       **extra}, default=str)
    with open(d / PROGRESS, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_failure(rank: int, world: int, key: CellKey | None, traceback: str) -> None:
    """Record rank ``rank``'s failure in cell ``key`` (no-op outside a job)."""
    d = job_dir()
    if d is None:
        return
    from ...store.results import write_cell_json  # the one atomic JSON writer

    write_cell_json(d / f"rank{rank}.json", {"rank": rank, "world_size": world,
                                             "cell": key.as_dict() if key else None,
                                             "traceback": traceback, "t": time.time()})


def read_events(d: Path) -> list[dict]:
    """The progress events of job folder ``d`` in order (a torn last line is dropped)."""
    out = []
    try:
        lines = (d / PROGRESS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def read_failures(d: Path) -> list[dict]:
    """The ``rank<R>.json`` records of job folder ``d``, by rank."""
    out = []
    for f in sorted(d.glob("rank*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda r: r.get("rank", 0))


_BLOCK = re.compile(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)(.*?)(?=\n\[\d+\]:|\n-{8,}|\n={8,}|\Z)",
                    re.S)


def failed_ranks(output: str) -> dict[int, tuple[int, str]]:
    """{rank: (exit code, text)} of every failure torchrun lists in its summary (the ranks
    that exited non-zero on their own; the ranks it stopped afterwards are not listed)."""
    i = output.rfind("Failures:")
    j = output.rfind("Root Cause")
    text = output[min(x for x in (i, j) if x >= 0):] if max(i, j) >= 0 else ""
    out: dict[int, tuple[int, str]] = {}
    for m in _BLOCK.finditer(text):
        out.setdefault(int(m.group(1)), (int(m.group(2)), m.group(0).strip()))
    return out


_ROOT = re.compile(r"Root Cause \(first observed failure\):(.*?)(?:\n=+|\Z)", re.S)


def root_cause(output: str) -> tuple[int | None, str]:
    """(rank, text) of torchrun's "Root Cause" block in its output ((None, "") if absent)."""
    m = _ROOT.search(output)
    if not m:
        return None, ""
    block = m.group(1).strip()
    r = re.search(r"rank\s*:\s*(\d+)", block)
    return (int(r.group(1)) if r else None), block
