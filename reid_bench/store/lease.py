"""A cell's lease: the per-cell lock a runner holds while it runs the cell, so two runners on
one results folder (local processes, Slurm tasks) never run the same cell at once.

The lock is an flock on ``<table>/.<cell_id>.running.lock``: the OS drops it when the process
dies, so a kill -9 leaves no stale lease.
"""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock, Timeout

from ..core.safepath import inside


def lease_path(cells_dir: Path, cell_id: str) -> Path:
    """The lock file of cell ``cell_id`` in the table's cell folder ``cells_dir``."""
    return inside(cells_dir, Path(cells_dir) / f".{cell_id}.running.lock")


def take(cells_dir: Path, cell_id: str) -> FileLock | None:
    """The cell's lease, held (release it with ``.release()``), or None when another process
    holds it now. Never blocks."""
    Path(cells_dir).mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lease_path(cells_dir, cell_id)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


def is_held(cells_dir: Path, cell_id: str) -> bool:
    """Whether some process holds the cell's lease now (probed without blocking)."""
    from ..core.orphans import lock_held

    return lock_held(lease_path(cells_dir, cell_id))


def guard_held(path: Path) -> bool | None:
    """Whether the lock guarding a temporary ``path`` of an unfinished write is held now (for
    ``orphans.sweep``): an artefact build folder's build lock, a cell work folder's lease;
    None when no lock guards it."""
    from ..core import orphans

    m = orphans.BUILD_DIR.match(path.name)
    if m:
        return orphans.lock_held(path.parent / f"{m['name']}.lock")
    work = next((p for p in path.parents if p.name.startswith(".work-")), None)
    if work is not None:
        return is_held(work.parent, work.name.removeprefix(".work-"))
    return None
