"""Run cells in this process; under torchrun, run them as one data-parallel training.

``python -m reid_bench.launch.worker --spec S --cells '[<cell_ref dict>, ...]'
--options '{...}'`` (what the torchrun and Slurm launchers execute). Under torchrun
(WORLD_SIZE > 1) every rank trains; rank 0 alone claims the cell, decides about cached
trainings, evaluates and writes the results. The other ranks follow rank 0's commands:
``("fit", cell key)`` → train the same cell in lockstep; ``("done", None)`` → exit.
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

from .. import distributed as D
from ..runner import Cell, Runner, RunSummary


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
        if D.is_main():
            reuse_ok = not self.base.refresh or final in self.base._fresh
            hit = bool(reuse_ok and (final / "config.json").is_file())
        hit = D.broadcast_object(hit)
        if hit:
            return final
        if D.is_main():
            try:
                return self.base.get_or_create(kind, config, build)
            finally:
                D.barrier()
        tmp = Path(tempfile.mkdtemp(prefix=f".rank{D.rank()}-"))
        try:
            build(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            D.barrier()
        return final


class _LeaderRunner(Runner):
    """Rank 0: the ordinary runner, telling the other ranks when a training starts."""

    def _fit_or_load(self, method, params, recipe, ds, cell, train_key, extras, details):
        D.broadcast_object(("fit", list(cell.key)))
        return super()._fit_or_load(method, params, recipe, ds, cell, train_key, extras,
                                    details)


class _StopAfterFit(Exception):
    """Raised by a follower right after training: it does not evaluate."""


class _FollowerRunner(Runner):
    """Rank > 0: the runner's own path up to and including training (same model, data, seed,
    work dir and cache decisions as rank 0), then stop: nothing is evaluated or written."""

    def _fit_or_load(self, *args, **kwargs):
        super()._fit_or_load(*args, **kwargs)
        raise _StopAfterFit


def _follow_fit(runner: Runner, cell: Cell) -> None:
    """Train ``cell`` in lockstep with rank 0."""
    try:
        runner._train_and_evaluate(cell, runner.cell_config(cell), {})
    except _StopAfterFit:
        pass


def run_cells(spec_path: str, refs: list, options: dict[str, Any],
              log: Callable[[str], None] = print) -> RunSummary:
    """Run the cells ``refs`` (``cell_ref`` dicts: the full cell key) of ``spec_path`` with ``options``
    (``options_to_dict``); distributed when started by torchrun. Returns rank 0's summary
    (an empty one on other ranks)."""
    from ..spec import load_spec
    from . import cells_from_refs, options_from_dict

    device = D.init_from_env(options.get("device"))
    spec = load_spec(spec_path)
    cells = cells_from_refs(spec, refs)
    quiet = D.rank() != 0
    opts = options_from_dict(options, device=str(device),
                             log=(lambda m: None) if quiet else log)
    if not D.is_distributed():
        return Runner(spec, opts).run(cells)
    try:
        if D.is_main():
            runner = _LeaderRunner(spec, opts)
            runner.cache = DistributedArtifactCache(runner.cache)
            try:
                return runner.run(cells)
            finally:
                D.broadcast_object(("done", None))
        runner = _FollowerRunner(spec, opts)
        runner.cache = DistributedArtifactCache(runner.cache)
        by_key = {tuple(c.key): c for c in cells}
        while True:
            cmd, key = D.broadcast_object(None)
            if cmd == "done":
                return RunSummary()
            try:
                _follow_fit(runner, by_key[tuple(key)])
            except Exception as exc:  # noqa: BLE001 — rank 0 records the cell's failure
                print(f"[rank {D.rank()}] {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        D.destroy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--cells", required=True, help="JSON list of cell_ref dicts (full cell keys)")
    ap.add_argument("--options", required=True, help="JSON RunOptions (options_to_dict)")
    a = ap.parse_args(argv)
    summary = run_cells(a.spec, json.loads(a.cells), json.loads(a.options))
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
