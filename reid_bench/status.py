"""``reid-bench status``: where every cell of a table stands.

A cell (row × dataset column × split × seed) is
``done``     — the CSV has it with status ok and its current config hash;
``failed``   — the CSV has it with status failed / diverged / not_run (the error is shown);
``running``  — a runner holds its claim lock ``<table>/.<cell_id>.running.lock`` right now
               (an flock: the OS drops it when the process dies, so this is never stale);
``stale``    — finished ok, but with another config (the spec or recipe changed): will re-run;
``pending``  — nothing yet.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import results as R
from .runner import Cell, Runner, RunOptions, plan
from .spec import Spec, stable_hash

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


def is_running(cells_dir: Path, cell_id: str) -> bool:
    """Whether some process holds the cell's claim lock now (probed without blocking)."""
    from filelock import FileLock, Timeout

    path = cells_dir / f".{cell_id}.running.lock"
    if not path.exists():
        return False
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def table_status(spec: Spec, results_dir: Path, *, smoke: bool = False,
                 seeds: int | None = None) -> list[CellStatus]:
    """The state of every planned cell of ``spec`` in ``results_dir``."""
    runner = Runner(spec, RunOptions(results_dir=Path(results_dir), smoke=smoke,
                                     log=lambda m: None))
    df = R.read_results(runner.csv)
    rows = {R.row_key(r): r for _, r in df.iterrows()}
    out = []
    for cell in plan(spec, seeds=seeds, smoke=smoke):
        out.append(_one(runner, cell, rows.get(cell.key)))
    return out


def _one(runner: Runner, cell: Cell, rec) -> CellStatus:
    base = dict(cell_id=cell.id, row=cell.row.name, dataset=cell.dataset, seed=cell.seed,
                split=cell.split)
    if is_running(runner.cells_dir, cell.id):
        return CellStatus(**base, state="running")
    if rec is None:
        return CellStatus(**base, state="pending")
    if rec["status"] != "ok":
        err = rec.get("error")
        return CellStatus(**base, state="failed",
                          error=f"{rec['status']}: {err if isinstance(err, str) else ''}")
    try:
        current = stable_hash(runner.cell_config(cell))
    except Exception:  # noqa: BLE001 — cannot resolve now (e.g. no stand-in): trust the CSV
        current = str(rec["config_hash"])
    return CellStatus(**base, state="done" if str(rec["config_hash"]) == current else "stale")


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
