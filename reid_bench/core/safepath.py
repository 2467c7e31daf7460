"""Names that become file names, and paths kept inside the folder they belong to.

A results folder is written from spec names (row names, column ids) and run options (variant
parts), so a hostile spec could otherwise place a file — or an ``rmtree`` — anywhere. Two rules
make that impossible:

- ``ID_PATTERN`` (column ids, dataset names) and ``row_slug`` (row names) are the only ways a
  name enters a file name; ``check_row_name`` says what a row name may hold.
- ``inside(root, path)`` resolves a path (symlinks and ``..`` included) and refuses it unless
  it lies inside ``root``. Every writer and deleter of a results folder calls it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from .errors import ResultsError

# Column ids and registered dataset names: lower-case ASCII letters, digits and single
# underscores. No '.', '/', '\\' or '__' (the cell id separator), so ``cell_id`` stays
# injective and a name is always one path component.
ID_PATTERN = r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$"
ID_MAX = 40
# Longest row name; its slug is a file-name part (a file name has at most 255 bytes).
ROW_NAME_MAX = 100
_ID_RE = re.compile(ID_PATTERN)


class UnsafePathError(ResultsError):
    """A path a writer or deleter was given lies outside the folder it must stay in."""


def row_slug(name: str) -> str:
    """The file-name part of a row name: ASCII letters and digits, other runs as '-', lower
    case (``"ResNet-50 (I)"`` → ``"resnet-50-i"``). Not injective: ``check_row_name`` and the
    spec's collision check refuse names that share a slug."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def check_id(value: str) -> str | None:
    """None when ``value`` is an allowed column id / dataset name, else why not."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return (f"{value!r} is not an allowed id: use lower-case ASCII letters, digits and "
                "single underscores, starting with a letter (e.g. market, cuhk03_labeled)")
    if len(value) > ID_MAX:
        return f"{value[:20]!r}… is {len(value)} characters long; at most {ID_MAX}"
    return None


def check_row_name(name: str) -> str | None:
    """None when ``name`` may name a row, else why not: printable text (no control
    characters, NUL included), at most ``ROW_NAME_MAX`` characters, with at least one ASCII
    letter or digit (its slug is part of the cell's file names)."""
    bad = sorted({c for c in name if unicodedata.category(c)[0] == "C"})
    if bad:
        return (f"row name {name!r} holds control character(s) "
                f"{', '.join(f'U+{ord(c):04X}' for c in bad)}; use printable text")
    if len(name) > ROW_NAME_MAX:
        return f"row name {name[:30]!r}… is {len(name)} characters long; at most {ROW_NAME_MAX}"
    if not row_slug(name):
        return (f"row name {name!r} has no ASCII letter or digit; its file-name part "
                "(letters and digits only) would be empty")
    return None


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` resolved (symlinks, ``..``), refused with UnsafePathError unless it lies inside
    ``root`` (resolved too). A relative ``path`` is one the filesystem would open: relative to
    the working directory, like ``root`` (callers pass ``root / name``). Returns the resolved
    path; the path need not exist yet."""
    base = Path(root).resolve()
    target = Path(path)
    if "\0" in str(target):
        raise UnsafePathError(f"{str(target)!r}: a path with a NUL byte; refused")
    resolved = target.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafePathError(f"{path}: resolves to {resolved}, outside {base}; refused (a "
                              "name in the spec or a symlink in the results folder points out "
                              "of it)")
    return resolved
