"""The ``reid-bench run`` side of the launchers: hand the pending cells to torchrun, Slurm, or
several local processes (one per GPU)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any

from ...store import results
from ...table.plan import Cell
from ..runner import RunOptions
from . import options_to_dict, pending_cells

log = logging.getLogger(__name__)


def local_pool(spec_path: str, cells: list[Cell], opts: RunOptions, nproc: int) -> int:
    """Run ``cells`` with ``nproc`` independent local processes, process i on GPU i (via
    CUDA_VISIBLE_DEVICES); they share the cells through the per-cell lease. Returns 0 if
    every process finished with all its cells ok."""
    import torch

    refs = json.dumps([c.key.as_dict() for c in cells])
    opt = json.dumps(options_to_dict(opts))
    procs = []
    for i in range(nproc):
        env = dict(os.environ)
        for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
            env.pop(k, None)
        if torch.cuda.is_available():
            env["CUDA_VISIBLE_DEVICES"] = str(i)
        env["REID_BENCH_PROCS_PER_NODE"] = str(nproc)  # shares the CPUs' loader workers
        log.info("local process %d/%d%s", i + 1, nproc,
                 f" on GPU {i}" if torch.cuda.is_available() else "")
        procs.append(subprocess.Popen([sys.executable, "-m", "reid_bench.run.launch.worker",
                                       "--spec", str(spec_path), "--cells", refs,
                                       "--options", opt], env=env))
    rcs = [p.wait() for p in procs]
    from ...core.preempt import EXIT_PREEMPTED

    if EXIT_PREEMPTED in rcs:
        return EXIT_PREEMPTED
    return 0 if all(rc == 0 for rc in rcs) else 1


def dispatch(spec_path: str, spec: Any, cells: list[Cell], opts: RunOptions,
             slurm: dict[str, Any]) -> int:
    """Run ``cells`` with ``opts.launcher`` (torchrun | slurm | local with nproc > 1); returns
    the exit code for ``reid-bench run``. Progress is logged."""
    csv = results.table_csv(opts.results_dir, spec.paper.id, spec.table.id)
    todo = pending_cells(spec, opts, cells)
    log.info("%d of %d cell(s) pending", len(todo), len(cells))
    if not todo:
        return 0
    if opts.launcher == "torchrun":
        from .torchrun import run_torchrun

        outcomes = run_torchrun(spec_path, todo, options_to_dict(opts), opts.nproc)
        from ...core.preempt import EXIT_PREEMPTED

        if any(rc == EXIT_PREEMPTED for _, rc in outcomes):
            return EXIT_PREEMPTED  # stopped on a signal: `run` says how to resume
        bad = [cid for cid, rc in outcomes if rc != 0]
        for cid in bad:
            log.warning("  not ok: %s (see %s)", cid, csv)
        return 1 if bad else 0
    if opts.launcher == "slurm":
        from .slurm import load_site_config, submit

        cfg = load_site_config(slurm.get("site_config"), partition=slurm.get("partition"),
                               time=slurm.get("time"), gpus_per_node=slurm.get("gpus"),
                               array_parallelism=slurm.get("array_parallelism"),
                               nproc=opts.nproc if opts.nproc > 1 else None)
        jobs = submit(spec_path, todo, options_to_dict(opts), cfg,
                      name=f"reid-{spec.paper.id}-{spec.table.id}")
        ids = [str(j.job_id) for j in jobs]
        log.info("submitted %d Slurm task(s): %s%s", len(jobs), ", ".join(ids[:5]),
                 " …" if len(ids) > 5 else "")
        log.info("follow with: reid-bench status %s --results-dir %s", spec_path,
                 opts.results_dir)
        return 0
    return local_pool(spec_path, todo, opts, opts.nproc)
