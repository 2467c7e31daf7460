"""Temporary files and folders left by killed runs, found and removed at the start of a run.

Two kinds, both named with the writing process's id (``atomic.py``): a file written atomically
goes through ``.<name>.<pid>.<12 hex>.tmp``, an artefact is built in ``.<hash>.<pid>.<8
chars>/`` beside its final folder. A ``kill -9`` between the write and the rename leaves them
behind, and a disk fills up with them over many preemptions.

One is removed only when nobody can still be writing it: its process is not alive on this host,
it is older than the run now starting, and, when a lock guards it (an artefact's build lock, a
cell's lease for its work folder; ``busy``), that lock is free; an unguarded one (a CSV, JSON or
report write takes milliseconds) must also be ``min_age_s`` old, so a runner on another host of
a shared file system, whose process ids mean nothing here, is never touched mid-write.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{12}\.tmp$")
BUILD_DIR = re.compile(r"^\.(?P<name>[0-9a-f]{16})\.(?P<pid>\d+)\.[a-z0-9_]{8}$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one we may not signal counts as alive)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_held(lock: Path) -> bool:
    """Whether some process holds the file lock ``lock`` now (probed without blocking)."""
    from filelock import FileLock, Timeout

    if not lock.exists():
        return False
    probe = FileLock(str(lock))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def find(root: Path) -> list[tuple[Path, int]]:
    """(path, writer pid) of every temporary file and artefact build folder under ``root``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in list(dirnames):
            m = BUILD_DIR.match(d)
            if m:
                out.append((Path(dirpath) / d, int(m["pid"])))
                dirnames.remove(d)  # its contents go with it
        out += [(Path(dirpath) / f, int(m["pid"])) for f in filenames
                if (m := TEMP_FILE.match(f))]
    return out


def sweep(root: Path, started: float, *, busy: Callable[[Path], bool | None] = lambda p: None,
          min_age_s: float = 600.0) -> list[Path]:
    """Remove the orphans under ``root`` (see the module docstring); ``started``: the run's
    start (``time.time()``); ``busy(path)``: True when its guarding lock is held, False when
    free, None when no lock guards it. Returns what was removed."""
    root = Path(root)
    if not root.is_dir():
        return []
    removed = []
    now = time.time()
    for path, pid in find(root):
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if pid == os.getpid() or pid_alive(pid) or mtime >= started:
            continue
        guarded = busy(path)
        if guarded or (guarded is None and now - mtime < min_age_s):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    if removed:
        log.info("removed %d temporary file(s)/folder(s) left by killed runs under %s",
                 len(removed), root)
    return removed
