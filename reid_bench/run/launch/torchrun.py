"""``--launcher torchrun``: the pending cells run as one ``torch.distributed.run`` job with
``nproc`` processes (DDP), cell after cell; rank 0 writes the results.

One job for all cells, not one per cell: a job's start-up (interpreters, imports, process
group) costs seconds to tens of seconds, which would dominate a table of many short cells
(e.g. 20 CUHK03 splits per row). If a rank fails, torchrun stops the job; the cell that was
running is recorded ``failed`` with the failing rank's traceback (``jobfiles``) and a new job
runs the cells that had not started yet. See docs/reliability.md.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...table.plan import Cell, CellKey
from . import jobfiles

log = logging.getLogger(__name__)


def torchrun_command(spec_path: str, cells: Cell | Sequence[Cell], options: dict[str, Any],
                     nproc: int) -> list[str]:
    """The command line that runs ``cells`` (one or several) with ``nproc`` DDP processes on
    this node."""
    cells = [cells] if isinstance(cells, Cell) else list(cells)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "reid_bench.run.launch.worker",
            "--spec", str(spec_path), "--cells", json.dumps([c.key.as_dict() for c in cells]),
            "--options", json.dumps(options)]


def _run_job(cmd: list[str], job: Path) -> tuple[int, str]:
    """Run ``cmd`` with ``$REID_BENCH_JOB_DIR`` = ``job``; its stderr is passed through and its
    tail kept (torchrun's failure summary). Returns (exit code, stderr tail)."""
    env = dict(os.environ, **{jobfiles.JOB_ENV: str(job)})
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, errors="replace")
    tail: collections.deque[str] = collections.deque(maxlen=400)

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            tail.append(line)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    rc = proc.wait()
    t.join(timeout=10)
    sys.stderr.flush()
    return rc, "".join(tail)


def _failure_of(job: Path, ref: dict, rank0_end: dict | None, output: str, nproc: int,
                ) -> tuple[str, str] | None:
    """(message, traceback) for the cell ``ref`` that was running when the job failed, or None
    to keep what rank 0 recorded for it. The root cause is a rank that died by a signal other
    than SIGTERM (it left no traceback; SIGTERM is how torchrun stops the other ranks, which
    it may list too), else the earliest of the ranks' tracebacks and rank 0's record (the
    other ranks' errors, e.g. a broken connection, come after it)."""
    key = CellKey.from_dict(ref)
    files = [f for f in jobfiles.read_failures(job)
             if f.get("cell") is not None and CellKey.from_dict(f["cell"]) == key]
    listed = jobfiles.failed_ranks(output)
    for r, (code, text) in sorted(listed.items()):
        if code < 0 and code != -signal.SIGTERM:
            return (f"rank {r} of {nproc} died (exit code {code}, killed by a signal) while "
                    f"training; the job was stopped", text)
    cands = [(f["t"], f) for f in files]
    if rank0_end is not None:
        cands.append((rank0_end["t"], None))
    if not cands:
        rank, block = jobfiles.root_cause(output)
        who = f"rank {rank} of {nproc}" if rank is not None else "a rank"
        return (f"{who} failed; the job was stopped", block or output[-4000:])
    _, first = min(cands, key=lambda c: c[0])
    if first is None:
        return None  # rank 0 failed first and recorded its own error
    tb = first["traceback"].rstrip()
    return f"rank {first['rank']} of {nproc} failed: {tb.splitlines()[-1]}", tb


def _record_failed(spec: Any, opts: Any, cell: Cell, msg: str, tb: str, started: float) -> None:
    """Record ``cell`` of ``spec`` failed with ``msg`` and traceback ``tb``, as the runner
    would (``opts``: the run's ``RunOptions``)."""
    import torch

    from ...core.hashing import stable_hash
    from ...store.cellrow import record
    from ...store.outcome import CellOutcome
    from ...table.plan import cell_config

    config = cell_config(spec, cell, opts)
    record(CellOutcome(spec, cell, "failed", msg, started, time.time(), config=config,
                       config_hash=stable_hash(config), traceback=tb),
           opts, torch.device(opts.device))


def run_torchrun(spec_path: str, cells: Sequence[Cell], options: dict[str, Any],
                 nproc: int) -> list[tuple[str, int]]:
    """Run ``cells`` under torchrun (one job, relaunched after a failed cell); returns
    [(cell id, 0 if the results record it ok else 1)] in the order of ``cells``
    (``preempt.EXIT_PREEMPTED`` for a cell a signal stopped: the job is not relaunched)."""
    from ...spec import load_spec
    from ...store import results
    from . import options_from_dict

    spec, opts = load_spec(spec_path), options_from_dict(options)
    from ...core.preempt import EXIT_PREEMPTED

    remaining, preempted = list(cells), None
    root = Path(options["results_dir"]) / "_jobs"
    root.mkdir(parents=True, exist_ok=True)
    while remaining:
        log.info("torchrun: %d cell(s) with %d process(es)", len(remaining), nproc)
        job = Path(tempfile.mkdtemp(prefix="torchrun-", dir=root))
        try:
            started = time.time()
            rc, output = _run_job(torchrun_command(spec_path, remaining, options, nproc), job)
            events = jobfiles.read_events(job)
            ended = {CellKey.from_dict(e["cell"]): e for e in events if e["event"] == "end"}
            starts = [e for e in events if e["event"] == "start"]
            by_key = {c.key: c for c in remaining}
            if rc == 0:  # the job went through every cell (each recorded by rank 0)
                break
            stopped = [e for e in events if e["event"] == "preempted"]
            if stopped:  # a signal stopped the job with its checkpoint: resume, never record
                log.warning("torchrun: %s; run again to resume", stopped[-1].get("message"))
                preempted = CellKey.from_dict(stopped[-1]["cell"])
                break
            culprit = starts[-1] if starts else None
            if culprit is None:
                # Failed before any cell started (spec, import, process group): every cell
                # is recorded with the error rather than relaunched forever.
                rank, block = jobfiles.root_cause(output)
                for c in remaining:
                    _record_failed(spec, opts, c, "torchrun job failed before the cell "
                                   "started", block or output[-4000:], started)
                break
            ck = CellKey.from_dict(culprit["cell"])
            cend = ended.get(ck)
            if cend is None or cend.get("status") != "ok":
                found = _failure_of(job, culprit["cell"], cend, output, nproc)
                if ck in by_key:
                    if found is not None:
                        _record_failed(spec, opts, by_key[ck], found[0], found[1],
                                       culprit["t"])
                    log.warning("  failed: %s%s", by_key[ck].id,
                                f" — {found[0]}" if found else "")
            done = set(ended) | {ck}
            remaining = [c for c in remaining if c.key not in done]
        finally:
            shutil.rmtree(job, ignore_errors=True)
    # What each cell ended as, from the results themselves (cells skipped as done elsewhere,
    # or recorded not_run before they started, included).
    df = results.read_results(results.table_csv(Path(options["results_dir"]), spec.paper.id,
                                                spec.table.id))
    status = dict(zip(df["cell_id"], df["status"], strict=True)) if len(df) else {}
    return [(c.id, EXIT_PREEMPTED if c.key == preempted
             else 0 if status.get(c.id) == "ok" else 1) for c in cells]
