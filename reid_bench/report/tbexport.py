"""``reid-bench curves RESULTS --to-tensorboard DIR``: the saved training histories of a results
folder as TensorBoard event files, after the fact (``run --tensorboard`` writes them live).

Each cell's history: the full ``metrics.csv`` its cell JSON points to when that file lies
inside the results folder, else the epoch rows the cell JSON carries. Written to
``DIR/<paper>/<table>/<cell_id>/<stage>/``, the layout ``run --tensorboard`` uses."""

from __future__ import annotations

import logging
from pathlib import Path

from ..core.errors import ResultsError
from ..core.safepath import inside
from ..history import read_rows
from ..history.tensorboard import write_rows
from .curves import load_history

log = logging.getLogger(__name__)


def _inside(root: Path, pointer: str | None) -> Path | None:
    """``root / pointer`` when it resolves inside ``root`` (symlinks followed), else None."""
    if not pointer:
        return None
    try:
        p = inside(root, root / pointer)
    except ResultsError:
        return None
    return p if p.is_file() else None


def cell_histories(results_dir: Path) -> list[tuple[str, list[dict]]]:
    """``(paper/table/cell_id, rows)`` of every cell JSON with a history in ``results_dir``."""
    root = Path(results_dir)
    out = []
    for f in sorted(root.glob("*/*/*.json")):
        paper, table = f.parent.parent.name, f.parent.name
        if paper.startswith(("_", ".")) or table.startswith(("_", ".")):
            continue
        rows, ptr = load_history(f)
        full = _inside(root, ptr)
        if full is not None:
            try:
                rows = read_rows(full)
            except ResultsError as exc:
                log.warning("%s: using the cell JSON's epoch rows: %s", f, exc)
        elif ptr:
            log.warning("%s: history_file %r is not a file inside %s; using the cell JSON's "
                        "epoch rows", f, ptr, root)
        if rows:
            out.append((f"{paper}/{table}/{f.stem}", rows))
    return out


def to_tensorboard(results_dir: Path, out: Path) -> list[tuple[str, int]]:
    """Write every cell history of ``results_dir`` under ``out``; ``(cell, rows)`` written."""
    done = []
    for cell, rows in cell_histories(results_dir):
        done.append((cell, write_rows(rows, Path(out) / cell)))
    return done
