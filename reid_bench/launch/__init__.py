"""How cells are launched: in this process (``local``), one cell at a time as a torchrun DDP
job (``torchrun``), or one Slurm job per pending cell through submitit (``slurm``).

Every launcher funnels into ``worker.run_cells``, which runs cells with the ordinary ``Runner``
(so results land in the same CSV under its lock, and the per-cell lease keeps two jobs off one
cell). Options travel between processes as the JSON dict of ``options_to_dict``; cells as the
JSON dicts of their keys (``plan.CellKey.as_dict``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import results
from ..plan import Cell, config_hash
from ..runner import RunOptions


def options_to_dict(opts: RunOptions) -> dict[str, Any]:
    """``opts`` as a picklable/JSON dict."""
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


def pending_cells(spec: Any, opts: RunOptions, cells: list[Cell]) -> list[Cell]:
    """The cells not finished ok with their current config (all of them with ``force``).
    Cells whose config cannot be resolved (dataset without stand-in) stay pending: the worker
    records why they did not run."""
    if opts.force:
        return list(cells)
    finished = results.finished_cells(
        results.table_csv(opts.results_dir, spec.paper.id, spec.table.id))
    out = []
    for c in cells:
        try:
            h = config_hash(spec, c, opts)
        except Exception:  # noqa: BLE001 — recorded by the worker
            h = None
        if h is None or finished.get(c.key) != h:
            out.append(c)
    return out
