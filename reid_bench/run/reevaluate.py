"""Evaluate a results row's stored model again and compare the numbers (``reid-bench verify
--reevaluate``): a shared results folder is checked without retraining anything.

The model is the one the row's cell JSON names under ``<results>/_artifacts`` (its files
verified against their sha256 first), rebuilt by its method, loaded with
``weights_only=True`` and evaluated with the cell's protocol on the cell's dataset through the
ordinary runner steps (``Runner.prepare``, then ``Runner.evaluate`` of the loaded model).
Nothing is written to the results folder.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import torch

from ..store import results
from ..store.outcome import Prepared
from ..table.plan import Cell
from .runner import Runner, RunOptions

log = logging.getLogger(__name__)


def _stored_model(prepared: Prepared, folder: Path, device: torch.device) -> torch.nn.Module:
    """``prepared``'s network rebuilt by its method with the state stored in ``folder``."""
    model = prepared.architecture()
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device)


def _spec_for(paper: str, table: str, spec_paths: list[str] | None) -> Any:
    from ..spec import specs_by_table

    return specs_by_table(spec_paths).get((paper, table))


def reevaluate_row(row: dict[str, Any], results_dir: Path, *, spec_paths: list[str] | None,
                   data_root: Path | None, device: str = "cpu",
                   tolerance: float = 0.01, artifacts_dir: Path | None = None,
                   ) -> tuple[dict[str, float] | None, str | None]:
    """(metrics of the stored model, None) when they match ``row`` within ``tolerance``
    percentage points, else (metrics or None, why not). The caller (``verify_folder``) has
    already checked the stored model's files against their manifest (sha256)."""
    from .verify import artefact_folder, cell_json_path, read_cell_json

    payload, why = read_cell_json(cell_json_path(row, results_dir), results_dir)
    if payload is None:
        return None, why
    folder = artefact_folder(payload, results_dir, artifacts_dir)
    if folder is None or not (folder / "model.pt").is_file():
        where = artifacts_dir or Path(results_dir) / "_artifacts"
        return None, f"no stored model to re-evaluate (its cell JSON names none in {where})"
    if row.get("variant"):
        return None, "variant rows are not re-evaluated (their spec copy or --set values " \
                     "are not in the results folder)"
    spec = _spec_for(str(row["paper"]), str(row["table"]), spec_paths)
    if spec is None:
        return None, f"no spec for {row['paper']}/{row['table']} (pass --specs)"
    spec_row = next((r for r in spec.rows if r.name == row["row"]), None)
    if spec_row is None or not spec_row.runnable:
        return None, f"the spec has no runnable row {row['row']!r}"
    tier = str(row["tier"])
    cell = Cell(spec_row, str(row["dataset"]), int(float(row["seed"])), tier,
                results.split_of(row.get("split")), "")
    opts = RunOptions(results_dir=Path(results_dir), data_root=data_root, device=device,
                      smoke=tier == "smoke", quiet=True)
    runner = Runner(spec, opts)
    try:
        prepared = runner.prepare(cell)
        got = runner.evaluate(prepared, _stored_model(prepared, folder, runner.device)).metrics
    except Exception as exc:  # noqa: BLE001 — reported per row, the others still checked
        return None, f"could not re-evaluate: {type(exc).__name__}: {exc}"
    finally:
        work = runner.cells_dir / f".work-{cell.id}"
        if work.is_dir() and not any(work.iterdir()):
            shutil.rmtree(work, ignore_errors=True)
    have = results.metric_values(row)
    off = [f"{m} {have[m]:.2f} recorded, {v:.2f} re-evaluated" for m, v in sorted(got.items())
           if m in have and not (math.isfinite(v) and abs(v - have[m]) <= tolerance)]
    return got, ("re-evaluating the stored model does not give the row's numbers: "
                 + "; ".join(off) if off else None)
