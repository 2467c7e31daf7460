"""What a cell left beside its results row, for ``status``: the work folder of an interrupted
cell ``<table>/.work-<cell_id>/`` (the runner removes it when the cell finishes) with the
training checkpoints in it and the epoch each was saved at, and the record of a failed attempt
kept beside an ok row (``attempt_path``, written by ``cellrow.record``).

The results folder is untrusted input: a checkpoint is never unpickled here. The epoch comes
from a JSON sidecar (``<checkpoint>.json`` with an integer ``epoch``) when there is one, else
from the opcodes of the checkpoint's pickle (``pickletools.genops`` parses, it never executes),
read from the torch zip archive with a size bound.
"""

from __future__ import annotations

import datetime as dt
import json
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..store.results import cell_file

MAX_PICKLE_BYTES = 16 << 20  # the pickle of a state dict (tensors are stored apart): small
MAX_SIDECAR_BYTES = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    name: str  # file name in the work folder, e.g. grn.ckpt
    epoch: int | None  # epochs completed when it was saved; None when unreadable
    saved_at: str  # ISO time of the file's last change (UTC)

    def describe(self) -> str:
        epoch = "epoch unknown" if self.epoch is None else f"after epoch {self.epoch}"
        return f"checkpoint {self.name} {epoch}, saved {self.saved_at}"


def attempt_path(cells_dir: Path, cell_id: str) -> Path:
    """Where a failed attempt of a cell that has an ok row is recorded (inside ``cells_dir``, or
    ``safepath.UnsafePathError``)."""
    return cell_file(cells_dir, f"{cell_id}.attempt.json")


def work_dir(cells_dir: Path, cell_id: str) -> Path:
    """The work folder of cell ``cell_id`` in the table's cell folder ``cells_dir`` (inside it, or
    ``safepath.UnsafePathError``)."""
    return cell_file(cells_dir, f".work-{cell_id}")


def checkpoints(cells_dir: Path, cell_id: str) -> list[Checkpoint] | None:
    """The checkpoints in the cell's work folder, newest first; [] when the folder holds none
    (interrupted before the first save); None when there is no work folder (the cell never
    started, or finished). Symbolic links are not followed."""
    folder = work_dir(cells_dir, cell_id)
    if folder.is_symlink() or not folder.is_dir():
        return None
    found = []
    for p in folder.iterdir():
        if p.suffix != ".ckpt" or p.is_symlink() or not p.is_file():
            continue
        mtime = p.stat().st_mtime
        found.append((mtime, Checkpoint(p.name, checkpoint_epoch(p), _iso(mtime))))
    return [c for _, c in sorted(found, key=lambda t: t[0], reverse=True)]


def describe(cells_dir: Path, cell_id: str) -> str | None:
    """One line on where an interrupted cell stands ("checkpoint grn.ckpt after epoch 3, saved
    …" or "no checkpoint saved yet"), or None when it left no work folder."""
    found = checkpoints(cells_dir, cell_id)
    if found is None:
        return None
    return found[0].describe() if found else "no checkpoint saved yet"


def checkpoint_epoch(path: Path) -> int | None:
    """The ``epoch`` a checkpoint was saved at, read without unpickling it; None when it
    cannot be read (see the module docstring)."""
    side = path.with_name(path.name + ".json")
    if side.is_file() and not side.is_symlink() and side.stat().st_size <= MAX_SIDECAR_BYTES:
        try:
            epoch = json.loads(side.read_text()).get("epoch")
            if isinstance(epoch, int) and not isinstance(epoch, bool):
                return epoch
        except (OSError, ValueError, AttributeError):
            pass
    try:
        with zipfile.ZipFile(path) as z:
            names = [i for i in z.infolist() if i.filename.endswith("/data.pkl")]
            if len(names) != 1 or names[0].file_size > MAX_PICKLE_BYTES:
                return None
            data = z.read(names[0])
    except (OSError, zipfile.BadZipFile, ValueError):
        return None
    return _top_level_int(data, "epoch")


def _top_level_int(data: bytes, key: str) -> int | None:
    """The int that follows the first ``key`` string in a pickle stream (a dict's key and
    value are pushed in order; later uses of the string are memo lookups, not literals)."""
    want = False
    try:
        for op, arg, _ in pickletools.genops(data):
            if want and op.name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
                continue  # the key string stored in the memo
            if want:
                return arg if op.name in ("BININT", "BININT1", "BININT2", "LONG1", "INT") \
                    and isinstance(arg, int) else None
            want = op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and arg == key
    except Exception:  # noqa: BLE001 - a malformed stream (any parse error): epoch unknown
        return None
    return None


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
