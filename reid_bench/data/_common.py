"""Helpers shared by the dataset loaders: finding a dataset folder, error messages that say
where we looked and where to get the data, atomic cache folders.

The leading underscore keeps the registry from importing this module as a dataset module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..core.errors import DatasetError


def missing_dataset_error(name: str, looked: Sequence[Path], expected: str, source: str,
                          missing: Sequence[Path] | None = None) -> DatasetError:
    """A DatasetError listing every path ``looked`` at, what a valid folder contains
    (``expected``) and where the dataset is officially obtained (``source``). With ``missing``
    (the needed files that are absent, when others are present) each path is marked found or
    MISSING, so the user sees which one to add."""
    if missing is not None and len(missing) < len(looked):
        gone = {str(p) for p in missing}
        paths = "\n".join(f"  - {p} ({'MISSING' if str(p) in gone else 'found'})"
                          for p in looked)
        head = (f"dataset {name!r} is incomplete: "
                f"{', '.join(Path(p).name for p in missing)} not found. Looked at:")
    else:
        paths = "\n".join(f"  - {p}" for p in looked)
        head = f"dataset {name!r} not found. Looked at:"
    err = DatasetError(
        f"{head}\n{paths}\n"
        f"Expected: {expected}\n"
        f"Obtain it from: {source}\n"
        f"Then place it at one of the paths above (the data root is set by --data-root or "
        f"$REID_BENCH_DATA).")
    err.missing = True  # lets `data check` report "missing" rather than "invalid"
    return err


def find_dataset_dir(candidates: Sequence[Path], marker: str | Callable[[Path], bool]) -> Path | None:
    """First of ``candidates`` that contains the entry ``marker`` (or for which the predicate
    ``marker`` is true); None when none does."""
    for c in candidates:
        ok = marker(c) if callable(marker) else (c / marker).exists()
        if c.is_dir() and ok:
            return c
    return None


def list_files(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    """Names (not paths) of the regular files in ``folder`` whose lower-cased name ends with one
    of ``suffixes``, sorted. Other files (Market ships a ``Thumbs.db``) are ignored. An entry
    that cannot be followed (a symlink to itself or in a loop) raises DatasetError naming it."""
    with os.scandir(folder) as it:
        names = [e.name for e in it
                 if e.name.lower().endswith(suffixes) and entry_is(e, "file")]
    names.sort()
    return names


def entry_is(entry: os.DirEntry, kind: str) -> bool:
    """``entry.is_file()`` (``kind`` "file") or ``entry.is_dir()`` ("dir"), following
    symlinks; DatasetError naming the entry when it cannot be followed (ELOOP: a symlink that
    points to itself or into a loop; a permission error)."""
    try:
        return entry.is_file() if kind == "file" else entry.is_dir()
    except OSError as exc:
        raise DatasetError(f"{entry.path}: cannot be followed ({exc.strerror or exc}); a "
                           "symlink that points to itself or into a loop? Remove or fix it."
                           ) from None
