"""Run cells in this process; under torchrun, run them as one data-parallel training.

``python -m reid_bench.run.launch.worker --spec S --cells '[<CellKey.as_dict()>, ...]'
--options '{...}'`` (what the torchrun and Slurm launchers execute). Under torchrun
(WORLD_SIZE > 1) every rank trains; rank 0 alone takes the cell's lease, decides about cached
trainings, evaluates and writes the results. The other ranks follow rank 0's commands:
``("fit", cell key)`` → train the same cell in lockstep; ``("done", None)`` → exit.

Failure (docs/reliability.md): a rank whose cell raises writes its traceback for the launcher
(``jobfiles``) and exits non-zero at once; torchrun then tears down the other ranks, and the
launcher records the cell ``failed`` with that traceback and relaunches the remaining cells.
Rank 0 ends the job the same way after recording a failed cell, since the other ranks may be
stuck in that cell's collectives.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...core.errors import DivergedError
from ...engine import distributed
from ...store.outcome import CellOutcome, Prepared
from ...table import shakedown
from ...table.plan import Cell, CellKey, cells_from_keys
from ..hooks import CellHooks
from ..runner import Runner, RunSummary
from . import jobfiles


class DistributedArtifactCache:
    """An ``ArtifactCache`` for ranks that train together: rank 0 decides hit or miss and tells
    the others; on a miss every rank runs ``build`` (its collectives need all ranks) but only
    rank 0 publishes, the others build into a throw-away folder; everyone then uses rank 0's
    folder."""

    def __init__(self, base: Any):
        self.base = base
        self.root, self.refresh = base.root, base.refresh

    @property
    def salt(self):
        return getattr(self.base, "salt", None)

    def salted(self, salt: str) -> DistributedArtifactCache:
        """The distributed view of ``base.salted(salt)``."""
        return DistributedArtifactCache(self.base.salted(salt))

    def path_for(self, kind: str, config: dict) -> Path:
        return self.base.path_for(kind, config)

    def exists(self, kind: str, config: dict) -> bool:
        return self.base.exists(kind, config)

    def get_or_create(self, kind: str, config: dict, build: Callable[[Path], None]) -> Path:
        final = self.base.path_for(kind, config)
        hit = None
        if distributed.is_main():
            hit = self.base.reusable(final)
        hit = distributed.broadcast_object(hit)
        if hit:
            return final
        # The barrier only after a successful build: a rank whose build raised must not wait
        # in a collective (the others may be mid-training); it exits and torchrun stops the job.
        if distributed.is_main():
            out = self.base.get_or_create(kind, config, build)
            distributed.barrier()
            return out
        tmp = Path(tempfile.mkdtemp(prefix=f".rank{distributed.rank()}-"))
        try:
            build(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        distributed.barrier()
        return final


class _AbortJob(Exception):
    """Raised by rank 0 after a cell failed in a distributed job: the other ranks may be stuck
    in that cell's collectives, so the job ends (the launcher relaunches the other cells)."""


class _Leader:
    """Rank 0's hooks on the ordinary runner (``CellHooks``): tell the other ranks when a
    training starts, and log each cell's start and end for the launcher (``jobfiles``)."""

    def __init__(self) -> None:
        self.current: CellKey | None = None  # key of the cell being run

    def hooks(self) -> CellHooks:
        return CellHooks(on_start=self.start, before_fit=self.before_fit,
                         on_outcome=self.end, on_preempted=self.preempted)

    def start(self, cell: Cell) -> None:
        self.current = cell.key
        jobfiles.log_event("start", self.current)

    def before_fit(self, prepared: Prepared) -> None:
        distributed.broadcast_object(("fit", list(prepared.cell.key)))

    def preempted(self, cell: Cell, exc: BaseException) -> None:
        # stopped on a signal, checkpoint saved: not a failure
        jobfiles.log_event("preempted", self.current, message=str(exc))

    def end(self, outcome: CellOutcome) -> None:
        jobfiles.log_event("end", self.current, status=outcome.status)
        self.current = None
        if outcome.status == "failed" and distributed.is_distributed():
            raise _AbortJob(f"{outcome.cell.id}: {outcome.error}")


def _follow_fit(runner: Runner, cell: Cell) -> None:
    """Rank > 0: the runner's own path up to and including training (same model, data, seed,
    work dir and cache decisions as rank 0), then stop: nothing is evaluated or written. A
    divergence is seen by every rank at the same step (the loss check is all-reduced) and
    rank 0 records it: the ranks stay in step."""
    try:
        prepared = runner.prepare(cell)
        shakedown.begin_cell(runner.device)
        runner.models.fit(prepared)
    except DivergedError:
        pass


def _die(current: CellKey | None) -> None:
    """A rank's exception in a distributed job: write its traceback for the launcher and exit
    at once, non-zero. torchrun then stops the other ranks (the process group goes with them),
    so no rank is left waiting in a collective for the process-group timeout. ``os._exit``:
    a normal shutdown could block in ``destroy_process_group`` or in atexit handlers while
    peers are mid-collective."""
    import os
    import traceback

    from ...core.preempt import EXIT_PREEMPTED, Preempted

    if isinstance(sys.exc_info()[1], Preempted):  # stopped on a signal, checkpoint saved
        print(f"[rank {distributed.rank()}] {sys.exc_info()[1]}", file=sys.stderr, flush=True)
        os._exit(EXIT_PREEMPTED)
    tb = traceback.format_exc()
    print(f"[rank {distributed.rank()}] {tb}", file=sys.stderr, flush=True)
    jobfiles.write_failure(distributed.rank(), distributed.world_size(), current, tb)
    sys.stdout.flush()
    os._exit(1)


def run_cells(spec_path: str, refs: list, options: dict[str, Any]) -> RunSummary:
    """Run the cells ``refs`` (``CellKey.as_dict`` dicts) of ``spec_path`` with ``options``
    (``options_to_dict``); distributed when started by torchrun. Returns rank 0's summary
    (an empty one on other ranks)."""
    from ...spec import load_spec
    from . import options_from_dict

    device = distributed.init_from_env(options.get("device"))
    spec = load_spec(spec_path)
    cells = cells_from_keys(spec, refs)
    opts = options_from_dict(options, device=str(device))
    from ...core.console import ensure

    ensure(quiet=opts.quiet, silent=distributed.rank() != 0)  # library logs: rank 0 prints them
    if not distributed.is_distributed():
        if jobfiles.job_dir() is not None:  # under a launcher: log progress for it
            return Runner(spec, opts, hooks=_Leader().hooks()).run(cells)
        return Runner(spec, opts).run(cells)
    current: CellKey | None = None
    try:
        if distributed.is_main():
            leader = _Leader()
            runner = Runner(spec, opts, hooks=leader.hooks(),
                            wrap_cache=DistributedArtifactCache)
            try:
                summary = runner.run(cells)
            except BaseException:  # noqa: BLE001 — incl. _AbortJob: end the whole job now
                _die(leader.current)
            distributed.broadcast_object(("done", None))
            distributed.destroy()
            return summary
        runner = Runner(spec, opts, wrap_cache=DistributedArtifactCache)
        by_key = {c.key: c for c in cells}
        while True:
            cmd, key = distributed.broadcast_object(None)
            if cmd == "done":
                distributed.destroy()
                return RunSummary()
            cell = by_key[CellKey(*key)]
            current = cell.key
            _follow_fit(runner, cell)
            current = None
    except BaseException:  # noqa: BLE001 — any rank's failure ends the job, with its traceback
        _die(current)
        raise  # unreachable: _die exits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--cells", required=True, help="JSON list of cell keys (CellKey.as_dict)")
    ap.add_argument("--options", required=True, help="JSON RunOptions (options_to_dict)")
    a = ap.parse_args(argv)
    from ...core.preempt import EXIT_PREEMPTED, Preempted

    try:
        summary = run_cells(a.spec, json.loads(a.cells), json.loads(a.options))
    except Preempted as exc:  # stopped on a signal with its checkpoint: not a failure
        print(f"{exc}; run again to resume", file=sys.stderr, flush=True)
        return EXIT_PREEMPTED
    if jobfiles.job_dir() is not None:
        return 0  # went through every cell: the launcher reads their outcomes from the CSV
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
