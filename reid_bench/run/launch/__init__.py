"""How cells are launched: in this process (``local``), one cell at a time as a torchrun DDP
job (``torchrun``), or one Slurm job per pending cell through submitit (``slurm``).

Every launcher funnels into ``worker.run_cells``, which runs cells with the ordinary ``Runner``
(so results land in the same CSV under its lock, and the per-cell lease keeps two jobs off one
cell). Options travel between processes as the JSON dict of ``options_to_dict``; cells as the
JSON dicts of their keys (``plan.CellKey.as_dict``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ...core.hashing import stable_hash
from ...store import results
from ...table.finished import DataFingerprints, is_finished
from ...table.plan import Cell, cell_config
from ..runner import RunOptions

# A worker runs the cells it is given in its own process: how they were launched stays here.
_NOT_SENT = ("launcher", "nproc")


def options_to_dict(opts: RunOptions) -> dict[str, Any]:
    """``opts`` as a picklable/JSON dict: every field (so a new option reaches the workers)
    but ``_NOT_SENT``; paths as strings, the pydantic option models as dicts."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(opts):
        if f.name in _NOT_SENT:
            continue
        v = getattr(opts, f.name)
        if isinstance(v, Path):
            v = str(v)
        elif isinstance(v, BaseModel):
            v = v.model_dump()
        elif isinstance(v, dict):
            v = dict(v)
        out[f.name] = v
    return out


def options_from_dict(d: dict[str, Any], **over: Any) -> RunOptions:
    from ...engine.accel import AccelOptions

    d = dict(d)
    d["results_dir"] = Path(d["results_dir"])
    d["data_root"] = Path(d["data_root"]) if d.get("data_root") else None
    d["artifacts_dir"] = Path(d["artifacts_dir"]) if d.get("artifacts_dir") else None
    d["accel"] = AccelOptions(**d["accel"]) if d.get("accel") is not None else None
    from ...table.shakedown import ShakedownOptions

    d["shakedown"] = (ShakedownOptions(**d["shakedown"]) if d.get("shakedown") is not None
                      else None)
    return RunOptions(**(d | over))


def pending_cells(spec: Any, opts: RunOptions, cells: list[Cell]) -> list[Cell]:
    """The cells not finished (``finished.is_finished``: ok with their current config and
    data fingerprint; all of them with ``force``). Cells whose config or data cannot be
    resolved (dataset without stand-in, data missing) stay pending: the worker records why
    they did not run."""
    if opts.force:
        return list(cells)
    rows = results.cell_rows(results.table_csv(opts.results_dir, spec.paper.id, spec.table.id))
    from ...data.base import resolve_data_root
    from ...data.check import load_verified

    root = resolve_data_root(opts.data_root)
    # Loaded and checked as the runner does (the same fingerprint, the same refusals).
    fingerprints = DataFingerprints(root, load=lambda name, options: load_verified(
        name, root, options, subset=opts.subset))
    out = []
    for c in cells:
        if c.key in rows:
            try:
                config = cell_config(spec, c, opts)
            except Exception:  # noqa: BLE001 — recorded by the worker
                config = None
            if config is not None and is_finished(rows[c.key], stable_hash(config),
                                                  fingerprints.of_config(config)):
                continue
        out.append(c)
    return out
