"""``--launcher torchrun``: each pending cell becomes one ``torch.distributed.run`` job with
``nproc`` processes (DDP); cells run one after another, rank 0 writes the results."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..runner import Cell
from . import cell_ref


def torchrun_command(spec_path: str, cell: Cell, options: dict[str, Any], nproc: int,
                     ) -> list[str]:
    """The command line that runs ``cell`` with ``nproc`` DDP processes on this node."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "reid_bench.launch.worker",
            "--spec", str(spec_path), "--cells", json.dumps([cell_ref(cell)]),
            "--options", json.dumps(options)]


def run_torchrun(spec_path: str, cells: Sequence[Cell], options: dict[str, Any], nproc: int,
                 log: Callable[[str], None] = print) -> list[tuple[str, int]]:
    """Run ``cells`` one at a time under torchrun; returns [(cell id, exit code)]."""
    out = []
    for i, cell in enumerate(cells, 1):
        log(f"[{i}/{len(cells)}] {cell.row.name} × {cell.dataset} (seed {cell.seed}): "
            f"torchrun with {nproc} process(es)")
        rc = subprocess.run(torchrun_command(spec_path, cell, options, nproc),
                            check=False).returncode
        out.append((cell.id, rc))
    return out
