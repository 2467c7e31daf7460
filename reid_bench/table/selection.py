"""What a ``reid-bench run`` command line selects: spec files (files or folders), rows and
dataset columns by forgiving names.

Names are matched case-insensitively; ``--rows "fmn, lan"`` and repeated options both work; an
unknown name is an error that suggests the closest valid ones (difflib), so a typo never runs
the wrong rows silently.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..core.errors import ReidBenchError
from ..spec.discover import find_specs


class SelectionError(ReidBenchError):
    """A spec path, row or dataset name on the command line matches nothing."""


def split_names(values: Iterable[str]) -> list[str]:
    """Repeatable, comma-separated option values → the names, stripped, empties dropped."""
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def expand_spec_paths(paths: Sequence[str]) -> list[Path]:
    """Spec files named by ``paths``: a file as is, a folder → every ``table*.yaml`` under it
    (sorted). Raises SelectionError for a path that does not exist or a folder without specs."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = find_specs([str(p)])
            if not found:
                raise SelectionError(f"{p}: no spec files (table*.yaml) in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise SelectionError(f"{p}: no such spec file or folder")
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def _suggest(name: str, valid: Iterable[str]) -> str:
    valid = sorted(set(valid))
    lower = {v.lower(): v for v in valid}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)
    return f"did you mean {', '.join(repr(lower[c]) for c in close)}?" if close else ""


def match(requested: Sequence[str], choices: dict[str, str], what: str) -> set[str]:
    """The canonical names of ``requested`` (case-insensitive) among ``choices`` (alias →
    canonical name). Raises SelectionError naming each unknown one with close suggestions and
    the valid names."""
    by_lower: dict[str, set[str]] = {}
    for alias, canon in choices.items():
        by_lower.setdefault(alias.lower(), set()).add(canon)
    out: set[str] = set()
    unknown = []
    for name in requested:
        hit = by_lower.get(name.lower())
        if hit:
            out |= hit
        else:
            unknown.append(name)
    if unknown:
        lines = [f"unknown {what} {u!r}" + (f" — {s}" if (s := _suggest(u, choices)) else "")
                 for u in unknown]
        valid = ", ".join(repr(c) for c in sorted(set(choices.values())))
        raise SelectionError("\n".join(lines) + f"\nvalid {what}s: {valid}")
    return out


def row_choices(specs: Sequence) -> dict[str, str]:
    """alias → row name over ``specs`` (runnable rows only: quoted rows never run)."""
    return {r.name: r.name for s in specs for r in s.rows if r.runnable}


def dataset_choices(specs: Sequence) -> dict[str, str]:
    """alias → column id over ``specs``: a column is named by its id, its dataset's registered
    name or its label."""
    out: dict[str, str] = {}
    for s in specs:
        for cid, col in s.datasets.items():
            for alias in (cid, col.name, col.label):
                if alias:
                    out[alias] = cid
    return out


def parse_splits(text: str) -> set[int]:
    """``--splits`` text → the partition indices: comma-separated indices and inclusive ranges,
    e.g. ``0-4`` → {0..4}, ``0,3,7``, ``0-2,9``. Raises SelectionError on anything else."""
    out: set[int] = set()
    for part in split_names([text]):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise SelectionError(f"--splits {text!r}: {part!r} is not an index or a range "
                                 "such as 0-4 (allowed: 0-4, 0,3,7, 0-2,9)") from None
        if a < 0 or b < a:
            raise SelectionError(f"--splits {text!r}: {part!r} is not a range of indices >= 0 "
                                 "from low to high, e.g. 0-4")
        out |= set(range(a, b + 1))
    if not out:
        raise SelectionError(f"--splits {text!r}: no partition index given, e.g. 0-4")
    return out


def select_splits(cells: Sequence, splits: set[int], n_splits: dict[str, int]) -> list:
    """The ``cells`` whose partition is in ``splits`` (cells of columns without partitions are
    kept). ``n_splits``: column id → its number of partitions. Raises SelectionError when an
    index is out of every such column's range."""
    with_splits = [c for c in cells if c.split is not None]
    if not with_splits:
        return list(cells)
    most = max(n_splits[c.dataset] for c in with_splits)
    beyond = sorted(i for i in splits if i >= most)
    if beyond:
        raise SelectionError(f"--splits: partition(s) {beyond} do not exist; the selected "
                             f"columns have partitions 0-{most - 1}")
    return [c for c in cells if c.split is None or c.split in splits]
