"""How cells are launched: in this process (``local``), one cell at a time as a torchrun DDP
job (``torchrun``), or one Slurm job per pending cell through submitit (``slurm``).

Every launcher funnels into ``worker.run_cells``, which runs cells with the ordinary ``Runner``
(so results land in the same CSV under its lock, and the per-cell claim lock keeps two jobs off
one cell). Options travel between processes as the JSON dict of ``options_to_dict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runner import Cell, Runner, RunOptions


def options_to_dict(opts: RunOptions) -> dict[str, Any]:
    """The picklable/JSON part of ``opts`` (everything but the log callback)."""
    accel = opts.accel.model_dump() if opts.accel is not None else None
    return {"results_dir": str(opts.results_dir),
            "data_root": str(opts.data_root) if opts.data_root is not None else None,
            "device": opts.device, "smoke": opts.smoke, "force": opts.force,
            "num_workers": opts.num_workers, "checkpoint_every": opts.checkpoint_every,
            "deterministic": opts.deterministic, "accel": accel,
            "overrides": dict(opts.overrides),
            "shakedown": opts.shakedown.model_dump() if opts.shakedown is not None else None,
            "subset": opts.subset, "checkpoint_minutes": opts.checkpoint_minutes,
            "quiet": opts.quiet, "weights": dict(opts.weights)}


def options_from_dict(d: dict[str, Any], **over: Any) -> RunOptions:
    from ..accel import AccelOptions

    d = dict(d)
    d["results_dir"] = Path(d["results_dir"])
    d["data_root"] = Path(d["data_root"]) if d.get("data_root") else None
    d["accel"] = AccelOptions(**d["accel"]) if d.get("accel") is not None else None
    from ..shakedown import ShakedownOptions

    d["shakedown"] = (ShakedownOptions(**d["shakedown"]) if d.get("shakedown") is not None
                      else None)
    return RunOptions(**(d | over))


def cell_ref(cell: Cell) -> dict:
    """JSON reference of a cell: its full key (row, dataset, seed, tier, split, variant)."""
    return {"row": cell.row.name, "dataset": cell.dataset, "seed": cell.seed,
            "tier": cell.tier, "split": cell.split, "variant": cell.variant}


def cells_from_refs(spec: Any, refs: list) -> list[Cell]:
    """The cells of ``spec`` named by ``cell_ref`` dicts."""
    rows = {r.name: r for r in spec.rows}
    return [Cell(rows[r["row"]], r["dataset"], int(r["seed"]), r["tier"],
                 None if r.get("split") is None else int(r["split"]), r.get("variant", ""))
            for r in refs]


def pending_cells(runner: Runner, cells: list[Cell]) -> list[Cell]:
    """The cells not finished ok with their current config (all of them with ``force``).
    Cells whose config cannot be resolved (dataset without stand-in) stay pending: the worker
    records why they did not run."""
    from .. import results as R
    from ..hashing import stable_hash

    if runner.opts.force:
        return list(cells)
    finished = R.finished_cells(runner.csv)
    out = []
    for c in cells:
        try:
            h = stable_hash(runner.cell_config(c))
        except Exception:  # noqa: BLE001 — recorded by the worker
            h = None
        if h is None or finished.get(c.key) != h:
            out.append(c)
    return out
