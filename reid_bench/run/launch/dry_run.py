"""``reid-bench run --dry-run``: the cells as the chosen launcher would receive them.

Each cell goes through the same serialisation the launchers use (``CellKey.as_dict`` → JSON →
``cells_from_keys``), so what is listed — split and seed included — is exactly what the
torchrun ranks, the local pool processes or the Slurm tasks would run."""

from __future__ import annotations

import json
from typing import Any

from ...core.textable import text_table
from ...table.plan import Cell, cells_from_keys


def launch_summary(launcher: str, nproc: int, n: int) -> str:
    """One line saying how ``n`` cells would be launched."""
    if launcher == "torchrun":
        return (f"launch: torchrun, {nproc} process(es) (DDP) training each cell; the {n} "
                "cell(s) run one after another in one job")
    if launcher == "slurm":
        per = f", torchrun with {nproc} process(es) inside each" if nproc > 1 else ""
        return f"launch: slurm, one array task per pending cell (up to {n}){per}"
    if nproc > 1:
        return f"launch: local pool of {nproc} process(es) sharing the {n} cell(s)"
    return f"launch: local, the {n} cell(s) in this process"


def dry_run_lines(spec: Any, cells: list[Cell], launcher: str, nproc: int) -> list[str]:
    """The launch line and one line per cell (row, column, split, seed, method, protocol),
    for the cells as the launcher would deserialise them. Raises RuntimeError if the
    serialisation lost any part of a cell's key."""
    refs = json.loads(json.dumps([c.key.as_dict() for c in cells]))
    received = cells_from_keys(spec, refs)
    lost = [c.id for c, r in zip(cells, received, strict=True) if c.key != r.key]
    if lost:
        raise RuntimeError(f"cell keys changed in the launcher's serialisation: {lost[:3]}")
    splits = any(c.split is not None for c in received)
    listed = [[c.row.name, c.dataset,
               *([] if not splits else ["" if c.split is None else f"split {c.split}"]),
               f"seed {c.seed}", f"method={c.row.method}",
               f"protocol={spec.datasets[c.dataset].eval.protocol}"] for c in received]
    return [launch_summary(launcher, nproc, len(cells)),
            *text_table(None, listed, indent="  ")]
