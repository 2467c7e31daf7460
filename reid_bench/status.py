"""``reid-bench status``: where every cell of a table stands.

A cell (row × dataset column × split × seed) is
``done``     — the CSV has it with status ok and its current config hash;
``failed``   — the CSV has it with status failed / diverged / not_run (the error is shown);
``running``  — a runner holds its lease ``<table>/.<cell_id>.running.lock`` right now
               (an flock: the OS drops it when the process dies, so this is never stale);
``stale``    — finished ok, but with another config (the spec or recipe changed): will re-run;
``pending``  — nothing yet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import lease, results
from .plan import Cell, PlanOptions, config_hash, plan
from .spec import Spec

STATES = ("done", "running", "failed", "stale", "pending")


@dataclass(frozen=True)
class CellStatus:
    cell_id: str
    row: str
    dataset: str
    seed: int
    state: str
    error: str = ""
    split: int | None = None  # for columns with ``splits``


# Tiers whose config the spec alone determines (see ConfigHashes.current).
REPLANNABLE_TIERS = ("full", "smoke")


class ConfigHashes:
    """The config hash a cell of ``spec`` would be recorded with now: ``status`` and the report
    compare a results row's ``config_hash`` with it to find stale cells (recipe changed)."""

    def __init__(self, spec: Spec, results_dir: Path):
        self.spec, self.results_dir = spec, Path(results_dir)

    def current(self, cell: Cell, overrides: dict | None = None) -> str | None:
        """The hash, or None when it cannot be resolved now (e.g. no synthetic stand-in) or
        not from the spec alone: a shakedown or smoke-recipe config also depends on the run's
        flags (steps, batch cap), which the CSV records but this is not given, so those cells
        are never called stale."""
        if cell.tier not in REPLANNABLE_TIERS:
            return None
        opts = PlanOptions(smoke=cell.smoke, overrides=dict(overrides or {}))
        try:
            return config_hash(self.spec, cell, opts)
        except Exception:  # noqa: BLE001 — unresolvable now: the caller trusts the CSV
            return None

    def is_stale(self, cell: Cell, recorded: str, overrides: dict | None = None) -> bool:
        """Whether ``recorded`` (a row's config_hash) differs from the current hash."""
        current = self.current(cell, overrides)
        return current is not None and str(recorded) != current


def table_status(spec: Spec, results_dir: Path, *, smoke: bool = False,
                 seeds: int | None = None, tier: str | None = None) -> list[CellStatus]:
    """The state of every planned cell of ``spec`` in ``results_dir`` in ``tier`` (default
    "smoke" with ``smoke``, else "full"; a spec copy: its own ``spec:<hash>`` cells)."""
    from .overrides import compose_variant, spec_parts
    from .rowstate import RowStates

    hashes = RowStates(spec)
    df = results.read_results(results.table_csv(results_dir, spec.paper.id, spec.table.id))
    cells_dir = results.cell_dir(results_dir, spec.paper.id, spec.table.id)
    rows = {results.row_key(r): r for _, r in df.iterrows()}
    out = []
    for cell in plan(spec, seeds=seeds, smoke=smoke, tier=tier,
                     variant=compose_variant(spec_parts(spec))):
        out.append(_one(hashes, cells_dir, cell, rows.get(cell.key)))
    return out


def _one(hashes: Any, cells_dir: Path, cell: Cell, rec) -> CellStatus:
    base = dict(cell_id=cell.id, row=cell.row.name, dataset=cell.dataset, seed=cell.seed,
                split=cell.split)
    if lease.is_held(cells_dir, cell.id):
        return CellStatus(**base, state="running")
    if rec is None:
        return CellStatus(**base, state="pending")
    if rec["status"] != "ok":
        err = rec.get("error")
        return CellStatus(**base, state="failed",
                          error=f"{rec['status']}: {err if isinstance(err, str) else ''}")
    # The row's state (reid_bench.rowstate), the same the report shows.
    stale = hashes.state(rec.to_dict()).stale
    return CellStatus(**base, state="stale" if stale else "done")


def format_status(spec: Spec, statuses: list[CellStatus], verbose: bool = True) -> str:
    """A summary line per table (counts per state) and one line per cell not done."""
    counts = Counter(s.state for s in statuses)
    head = (f"{spec.paper.id}/{spec.table.id}: {len(statuses)} cell(s) — "
            + ", ".join(f"{counts.get(k, 0)} {k}" for k in STATES))
    lines = [head, *_split_counts(statuses)]
    if verbose:
        for s in statuses:
            if s.state != "done":
                split = "" if s.split is None else f"split {s.split}, "
                lines.append(f"  {s.state:<8} {s.row} × {s.dataset} ({split}seed {s.seed})"
                             + (f" — {s.error.splitlines()[0]}" if s.error else ""))
    return "\n".join(lines)


def _split_counts(statuses: list[CellStatus]) -> list[str]:
    """Per row × split column: how many of its splits are done, e.g.
    ``  IDE × cuhk03: 7/20 splits done``."""
    groups: dict[tuple[str, str], list[CellStatus]] = {}
    for s in statuses:
        if s.split is not None:
            groups.setdefault((s.row, s.dataset), []).append(s)
    out = []
    for (row, ds), ss in groups.items():
        splits = {s.split for s in ss}
        # A split is done when all its seeds are.
        done = {sp for sp in splits
                if all(s.state == "done" for s in ss if s.split == sp)}
        out.append(f"  {row} × {ds}: {len(done)}/{len(splits)} splits done")
    return out
