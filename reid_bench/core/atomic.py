"""Atomic writes: a file or folder is either absent, the old version, or the whole new one.

Every writer of results, reports, checkpoints, converted weights and caches goes through here:
the content goes to a temporary sibling with a name unique to this process and call
(``.<name>.<pid>.<random>.tmp``), is flushed and fsynced, then moved onto the target with
``os.replace``: two concurrent writers of one path never share a temporary file (the last
rename wins, whole); a failure removes the temporary. A process killed between write and rename
leaves only a ``.<name>.*.tmp`` file, which ``stale_temps`` finds for cleanup.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from .errors import DiskFullError
from .faults import disk_full_point, fault_point


def temp_path(path: Path) -> Path:
    """A fresh temporary sibling of ``path``: same folder (so the rename is atomic), a name
    unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def stale_temps(path: Path) -> list[Path]:
    """Temporary files of ``path`` left by writers killed before their rename."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(path: Path, write: Callable[[Path], object], *, fault: str | None = None) -> Path:
    """Write ``path`` atomically through ``write(tmp_path)`` (e.g. ``torch.save`` or
    safetensors' ``save_file`` onto the temporary path). ``fault`` names a
    ``reid_bench.core.faults`` point visited between the fsync and the rename. Returns ``path``."""
    path = Path(path)
    tmp = temp_path(path)
    full = None
    try:
        disk_full_point(path)
        write(tmp)
        _fsync(tmp)
        if fault:
            fault_point(fault)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if not is_disk_full(exc):
            raise
        full = str(exc)
    if full is not None:
        # Raised outside the except block: the failed write's traceback (whose frames may hold
        # the temporary file open, keeping its space) is released first.
        raise DiskFullError(path, full)
    return path


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write failing for want of space: ENOSPC/EDQUOT, or the error
    ``torch.save`` raises when its stream fails (``basic_ios::clear``)."""
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, RuntimeError) and "basic_ios" in str(exc)


def write_bytes(path: Path, data: bytes, *, fault: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return save(path, lambda tmp: tmp.write_bytes(data), fault=fault)


def write_text(path: Path, text: str, *, fault: str | None = None) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"), fault=fault)


def build_dir(final_dir: Path, build: Callable[[Path], None], *, replace: bool = False) -> Path:
    """Create ``final_dir`` by calling ``build(tmp_dir)`` on a temporary sibling folder, then
    renaming it into place, so a crash or a concurrent run never leaves a half-written folder
    at ``final_dir``. An existing ``final_dir`` is returned as is, unless ``replace`` (the
    caller holds a lock and wants it rebuilt). If a concurrent builder renamed first, its
    folder is kept and ours discarded (same inputs, equivalent result). ``build`` may raise:
    nothing is published then. Returns ``final_dir``."""
    final_dir = Path(final_dir)
    if final_dir.is_dir() and not replace:
        return final_dir
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.{os.getpid()}.",
                                dir=final_dir.parent))
    full = None
    try:
        build(tmp)
        if replace and final_dir.exists():
            shutil.rmtree(final_dir)
        try:
            os.rename(tmp, final_dir)
        except OSError:
            if not final_dir.is_dir():
                raise
    except BaseException as exc:
        # (the finally below removes tmp before the deferred DiskFullError is raised)
        if not is_disk_full(exc):
            raise
        full = ((exc.path, exc.cause) if isinstance(exc, DiskFullError)
                else (getattr(exc, "filename", None) or final_dir, str(exc)))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if full is not None:  # outside the except block, as in ``save``
        raise DiskFullError(*full)
    return final_dir
