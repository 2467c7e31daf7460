"""``reid-bench status``: where every cell of a table stands, in every tier and variant the
results folder holds.

A cell (row × dataset column × split × seed, in a tier and variant) is
``done``         — finished (``finished.is_finished``): ok with its current config hash and the
                   fingerprint of the data it would run on now;
``running``      — a runner holds its lease ``<table>/.<cell_id>.running.lock`` right now
                   (an flock: the OS drops it when the process dies, so this is never stale);
``interrupted``  — not finished, and a runner left its work folder ``.work-<cell_id>`` (killed,
                   crashed): the note names the last checkpoint and its epoch; a run resumes it;
``failed``       — the CSV has it with status failed / diverged / not_run (the error is shown);
``stale``        — finished ok, but with another config (the spec or recipe changed): will re-run;
``data_changed`` — finished ok, but on other data (files added, removed or replaced since, or
                   another data root): will re-run;
``unverified``   — finished ok, but its dataset does not load here (``--data-root``), so it
                   cannot be checked against the data; a run would re-run it;
``pending``      — nothing yet.
A done cell whose later attempt failed (the ok row is kept, ``cellrow.record``) says so in its
note.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..core.textable import text_table
from ..spec import Spec
from ..store import lease, results
from . import workdirs
from .finished import DataFingerprints, _text, is_finished
from .plan import Cell, PlanOptions, cell_label, config_hash, dataset_source, plan, train_source
from .rowstate import RowStates
from .workdirs import attempt_path

STATES = ("done", "running", "interrupted", "failed", "stale", "data_changed", "unverified",
          "pending")
MAX_ATTEMPT_BYTES = 1 << 20  # an attempt record is a row and its details: small


@dataclass(frozen=True)
class CellStatus:
    cell_id: str
    row: str
    dataset: str
    seed: int
    state: str
    error: str = ""
    split: int | None = None  # for columns with ``splits``
    tier: str = "full"
    variant: str = ""
    note: str = ""  # interrupted: the last checkpoint; done: a later failed attempt


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
                 seeds: int | None = None, tier: str | None = None, variant: str | None = None,
                 fingerprints: DataFingerprints | None = None) -> list[CellStatus]:
    """The state of every planned cell of ``spec`` in ``results_dir`` in ``tier`` (default
    "smoke" with ``smoke``, else "full") and ``variant`` (default: the spec's own, "" for the
    canonical spec, ``spec:<hash>`` for a copy). A non-default variant plans only the rows it
    has results for. ``fingerprints``: the data the cells would run on (default: the default
    data root)."""
    from .overrides import compose_variant, spec_parts

    tier = tier or ("smoke" if smoke else "full")
    own = compose_variant(spec_parts(spec))
    variant = own if variant is None else variant
    fingerprints = fingerprints or DataFingerprints()
    df = results.read_results(results.table_csv(results_dir, spec.paper.id, spec.table.id))
    cells_dir = results.cell_dir(results_dir, spec.paper.id, spec.table.id)
    rows = {results.row_key(r): r for r in df.to_dict("records")}
    cells = plan(spec, seeds=seeds, tier=tier, variant=variant)
    if variant != own:
        ran = {k[0] for k in rows if k[4] == tier and k[5] == variant}
        cells = [c for c in cells if c.row.name in ran]
    checker = _Checker(spec, fingerprints, replannable=_replannable(variant))
    return [_one(checker, cells_dir, cell, rows.get(cell.key)) for cell in cells]


def groups_present(spec: Spec, results_dir: Path) -> list[tuple[str, str]]:
    """The (tier, variant) groups of ``spec`` that the results folder holds rows of, or that
    an interrupted run left a work folder for (canonical variant), in ``results.TIERS`` order;
    always the full tier of the spec's own variant first."""
    from .overrides import compose_variant, spec_parts, variant_parts

    own = compose_variant(spec_parts(spec))
    mine = set(spec_parts(spec))
    df = results.read_results(results.table_csv(results_dir, spec.paper.id, spec.table.id))
    found = {("full", own)}
    for t, v in zip(df["tier"], df["variant"], strict=True):
        v = results._key_text(v)
        # Another spec copy's cells (another spec: part) are that copy's status, not ours.
        if {p for p in variant_parts(v) if p.startswith("spec:")} == mine:
            found.add((str(t), v))
    cells_dir = results.cell_dir(results_dir, spec.paper.id, spec.table.id)
    if cells_dir.is_dir():
        for d in cells_dir.glob(".work-*"):
            last = d.name.rsplit("__", 1)[-1]
            if last in results.TIERS:
                found.add((last, own))
    order = {t: i for i, t in enumerate(results.TIERS)}
    return sorted(found, key=lambda g: (g != ("full", own), order.get(g[0], 99), g[1]))


def _replannable(variant: str) -> bool:
    # spec:, set: and subset parts change only what plan.cell_config already takes (the spec,
    # the overrides in the row, the variant text); a variant: part swaps an assumption the
    # cell's config records but the spec alone does not give.
    from .overrides import variant_parts

    return not any(p.startswith("variant:") for p in variant_parts(variant))


class _Checker:
    """``finished.is_finished`` for status: the current config hash and data fingerprint of a
    cell, each from the spec when it determines them, else the row's own (trusted)."""

    def __init__(self, spec: Spec, fingerprints: DataFingerprints, replannable: bool):
        self.spec, self.fps, self.replannable = spec, fingerprints, replannable
        self.states = RowStates(spec)

    def hash_now(self, rec: dict) -> str | None:
        # The same re-planned hash the report's row state uses (rowstate.RowStates), so a cell
        # status calls stale is the number the report flags stale, in every tier and variant.
        current = self.states.current_config_hash(rec)
        return current if current is not None else _text(rec.get("config_hash"))

    def data_now(self, cell: Cell, rec: dict) -> str | None:
        if cell.tier == "shakedown" or not self.replannable:
            # The stand-in's options come from the run's flags: the row's own fingerprint.
            return _text(rec.get("dataset_fingerprint")) or None
        col = self.spec.datasets[cell.dataset]
        opts = PlanOptions(smoke=cell.smoke)
        try:
            name, options = dataset_source(self.spec, col, opts)
            train = train_source(self.spec, col, opts)
        except Exception:  # noqa: BLE001 — no stand-in: nothing to check against
            return None
        if cell.split is not None:
            options = {**options, "split": cell.split}
        return self.fps.of_config({
            "dataset": {"name": name, "options": options},
            "train_dataset": {"name": train[0], "options": train[1]} if train else None})


def _one(checker: _Checker, cells_dir: Path, cell: Cell, rec: dict | None) -> CellStatus:
    base = dict(cell_id=cell.id, row=cell.row.name, dataset=cell.dataset, seed=cell.seed,
                split=cell.split, tier=cell.tier, variant=cell.variant)
    if lease.is_held(cells_dir, cell.id):
        return CellStatus(**base, state="running")
    ok = rec is not None and rec["status"] == "ok"
    if not ok:
        left = workdirs.describe(cells_dir, cell.id)
        if left is not None:
            return CellStatus(**base, state="interrupted", note=left)
    if rec is None:
        return CellStatus(**base, state="pending")
    if not ok:
        err = rec.get("error")
        return CellStatus(**base, state="failed",
                          error=f"{rec['status']}: {err if isinstance(err, str) else ''}")
    chash, fp = checker.hash_now(rec), checker.data_now(cell, rec)
    note = _attempt_note(cells_dir, cell.id)
    if is_finished(rec, chash, fp):
        return CellStatus(**base, state="done", note=note)
    if _text(rec.get("config_hash")) != chash:
        return CellStatus(**base, state="stale", note=note)
    if fp is None:
        return CellStatus(**base, state="unverified", note=note or "its data does not load "
                          "here: pass --data-root")
    return CellStatus(**base, state="data_changed", note=note)


def _attempt_note(cells_dir: Path, cell_id: str) -> str:
    """"last attempt <status> at <time>: <error line>" when a failed attempt was recorded beside
    the cell's ok row, else ""."""
    p = attempt_path(cells_dir, cell_id)
    if p.is_symlink() or not p.is_file() or p.stat().st_size > MAX_ATTEMPT_BYTES:
        return ""
    try:
        row = json.loads(p.read_text()).get("row") or {}
        status, when = str(row.get("status", "?")), str(row.get("finished_at", "?"))
        error = str(row.get("error") or "").splitlines()
    except (OSError, ValueError, AttributeError):
        return "a later attempt was recorded but is unreadable"
    # The first line, and the first item it introduces (e.g. the first bad file).
    first = " ".join(ln.strip() for ln in error[:2]) if error and error[0].endswith(":") \
        else (error[0] if error else "")
    return (f"ok row kept; the last attempt ({when}) ended {status}"
            + (f": {first[:300]}" if first else ""))


def format_status(spec: Spec, statuses: list[CellStatus], verbose: bool = True,
                  tier: str = "full", variant: str = "") -> str:
    """A summary line per table and group (counts per state) and one line per cell not done
    (with its note), plus done cells that carry a note."""
    counts = Counter(s.state for s in statuses)
    group = tier + (f", variant {variant}" if variant else "")
    flag = {"smoke": " (synthetic data)", "shakedown": " (a few steps: timing, not results)",
            "smoke_recipe": " (shrunk recipe)"}.get(tier, "")
    head = (f"{spec.paper.id}/{spec.table.id} [{group}]{flag}: {len(statuses)} cell(s) — "
            + ", ".join(f"{counts.get(k, 0)} {k}" for k in STATES if counts.get(k) or k in
                        ("done", "pending")))
    lines = [head, *_split_counts(statuses)]
    if verbose:
        listed = [[s.state, cell_label(s.row, s.dataset, s.split, s.seed)
                   + (f" — {s.error.splitlines()[0]}" if s.error else "")
                   + (f" — {s.note}" if s.note else "")]
                  for s in statuses if s.state != "done" or s.note]
        # The state column as wide as the longest state, so every table's listing lines up.
        lines += text_table(None, listed, indent="  ", sep=" ",
                            min_widths=[max(len(k) for k in STATES)])
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
        out.append(f"  {cell_label(row, ds)}: {len(done)}/{len(splits)} splits done")
    return out
