"""Training curves of a table page: per row and dataset column, the training history of each
trained model (the ``history`` rows of its cells' JSON, ``reid_bench.history``), seeds and
splits overlaid, as a small inline SVG in the style of ``report.plots``.

Top panel: each loss term per epoch (left axis) and the training accuracy and monitoring
rank-1/mAP (``--eval-every``; right axis, percent); bottom panel: the learning rate of each
parameter group. Stages follow each other on the x axis, their boundaries marked. Curves of
smoke, shakedown, subset or otherwise non-canonical runs carry that label in title and
watermark. A cell JSON is untrusted input: its size and every history row are bounded and
checked (``history.csvfile.clean_rows``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ..core.errors import ResultsError
from ..history.csvfile import clean_rows, plateaued
from ..store.results import cell_file
from ..table.overrides import variant_parts
from .plots import RC, to_svg

MAX_CELL_JSON = 32 * 2**20  # bytes of one cell JSON read for its history
_NOT_PLOTTED = {"stage", "kind", "epoch", "step", "epochs", "seconds", "img_per_s", "lr"}
MONITORING_NOTE = ("Monitoring evaluations (--eval-every) are on the test protocol and shown "
                   "for information only: the result is always the final epoch's model (no "
                   "model selection on the test set).")


@dataclass
class Curve:
    """One figure: the trained models of ``row`` on dataset column(s) ``columns``."""

    row: str
    columns: list[str]
    anchor: str  # HTML id the row's "curves" link points to
    runs: list[dict[str, Any]]  # {"label", "cell_id", "history_file", "rows"} per model
    warnings: list[str] = field(default_factory=list)  # loss plateaus
    monitored: bool = False
    svg: str = ""
    block: str = ""  # "" for the page's headline rows, else the other-results block's title
    label: str = ""  # the tier/variant label every figure of that block carries


def _anchor(row: str, col: str, block: str = "") -> str:
    return "curves-" + re.sub(r"[^A-Za-z0-9]+", "-", f"{row}-{col}-{block}").strip("-").lower()


def load_history(path: Path) -> tuple[list[dict], str | None]:
    """(history rows, pointer to the full metrics.csv) of one cell JSON; ([], None) when it has
    none, is unreadable or fails the checks (never raises)."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_CELL_JSON:
            return [], None
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            return [], None
        rows = clean_rows(data.get("history") or [], str(path))
    except (OSError, ValueError, ResultsError):
        return [], None
    ptr = data.get("history_file")
    return rows, ptr if isinstance(ptr, str) and len(ptr) < 500 else None


def table_curves(view: Any, cells_dir: Path, label: str = "") -> list[Curve]:
    """The curves of every trained model ``view`` shows: its headline rows (labelled
    ``label``, e.g. the page's tier) and each other-results block's rows (labelled with that
    block's tier and variant, ``block_label``), read from the cells' JSON in ``cells_dir``. SVGs
    are drawn later by ``draw``."""
    out: list[Curve] = []
    groups = [("", view.rows, label)] + [(o.title, o.rows, block_label(o.tier, o.variant))
                                         for o in getattr(view, "others", [])]
    for block, rows, lab in groups:
        for rv in rows:
            out += _row_curves(rv, cells_dir, block, lab)
    return out


def _row_curves(rv: Any, cells_dir: Path, block: str, label: str) -> list[Curve]:
    by_col: dict[str, list[dict]] = {}
    for c in rv.cells:
        cid = c.get("cell_id")
        if c.get("status") != "ok" or not isinstance(cid, str) or cid.startswith("."):
            continue
        try:  # the CSV is untrusted: its cell id must name a file inside the table folder
            path = cell_file(cells_dir, f"{cid}.json")
        except ResultsError:
            continue
        rows, ptr = load_history(path)
        if rows:
            split = c.get("split")
            tag = f"seed {c.get('seed')}" + (
                f" split {int(split)}" if isinstance(split, (int, float)) and split == split
                else "")
            by_col.setdefault(str(c.get("dataset")), []).append(
                {"label": tag, "cell_id": cid, "history_file": ptr, "rows": rows,
                 "train_hash": c.get("train_hash")})
    out: list[Curve] = []
    seen: dict[tuple, Curve] = {}
    for col, runs in by_col.items():
        # Columns that evaluate the same trained models share one figure.
        key = tuple(sorted(str(r["train_hash"]) for r in runs))
        if key in seen and all(r["train_hash"] for r in runs):
            seen[key].columns.append(col)
            continue
        runs.sort(key=lambda r: r["label"])
        warns = [f"{r['label']}: {w}" for r in runs for w in plateaued(r["rows"])]
        cur = Curve(rv.name, [col], _anchor(rv.name, col, block), runs, warns,
                    any(x["kind"] == "monitor" for r in runs for x in r["rows"]),
                    block=block, label=label)
        seen[key] = cur
        out.append(cur)
    return out


def block_label(tier: str, variant: str) -> str:
    """The label of an other-results block's curves: its tier and its deviations."""
    parts = {"shakedown": ["SHAKEDOWN"], "smoke": ["SYNTHETIC smoke"],
             "smoke_recipe": ["SMOKE RECIPE"]}.get(tier, [])
    vp = variant_parts(variant or "")
    if "subset" in vp:
        parts.append("SUBSET")
    if [p for p in vp if p != "subset"]:
        parts.append("VARIANT")
    return " + ".join(parts)


def _stage_offsets(rows: list[dict]) -> dict[str, int]:
    """x offset of each stage (its epochs follow the previous stages')."""
    off, total = {}, 0
    for st in dict.fromkeys(r["stage"] for r in rows):
        off[st] = total
        total += max((r["epoch"] for r in rows if r["stage"] == st), default=0)
    return off


def draw(curve: Curve, label: str = "") -> str:
    """The SVG of ``curve``; ``label`` (e.g. "SYNTHETIC smoke data") in title and watermark."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(6.4, 3.6), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        right = top.twinx()
    cmap = matplotlib.colormaps["tab10"]
    terms: dict[str, Any] = {}
    styles = ["-", "--", ":", "-."]
    boundaries: dict[float, str] = {}  # x where a stage starts → its name
    lrs: set[float] = set()
    for i, run in enumerate(curve.runs):
        rows = run["rows"]
        off = _stage_offsets(rows)
        epochs = [r for r in rows if r["kind"] == "epoch"]
        ls = styles[i % len(styles)]
        for st, o in off.items():
            boundaries.setdefault(o + 0.5, st)
        names = [k for r in epochs for k in r if k not in _NOT_PLOTTED
                 and not k.startswith("lr_group")]
        for name in dict.fromkeys(names):
            pts = [(off[r["stage"]] + r["epoch"], r[name]) for r in epochs if name in r]
            acc = "acc" in name
            color = terms.setdefault(name, cmap(len(terms) % 10))
            ax = right if acc else top
            ax.plot([x for x, _ in pts], [y * 100 if acc else y for _, y in pts], ls,
                    color=color, marker="." if len(pts) < 30 else None,
                    label=f"{name}{' (%)' if acc else ''}" if i == 0 else None)
        for name in ("rank1", "mAP"):
            pts = [(off[r["stage"]] + r["epoch"], r[name]) for r in rows
                   if r["kind"] == "monitor" and name in r]
            if pts:
                color = terms.setdefault(f"monitor {name}", cmap(len(terms) % 10))
                right.plot([x for x, _ in pts], [y for _, y in pts], ls, marker="D",
                           markersize=3, color=color,
                           label=f"{name} (monitoring, %)" if i == 0 else None)
        groups = sorted({k for r in epochs for k in r if k.startswith("lr_group")})
        for g, name in enumerate(groups or ["lr"]):
            pts = [(off[r["stage"]] + r["epoch"], r[name]) for r in epochs if name in r]
            lrs.update(y for _, y in pts)
            bottom.step([x for x, _ in pts], [y for _, y in pts], where="mid", linestyle=ls,
                        color=cmap(g % 10), label=name.replace("lr_", "") if i == 0 else None)
    for x, st in boundaries.items():
        for ax in (top, bottom) if x > 0.5 else ():
            ax.axvline(x, color="#888888", linestyle=":", linewidth=1)
        top.text(x, 1.0, f" {st}", transform=top.get_xaxis_transform(), fontsize=6,
                 va="top", color="#555555")
    top.set_ylabel("loss")
    right.set_ylabel("%")
    right.spines["right"].set_visible(True)
    bottom.set_ylabel("lr")
    bottom.set_xlabel("epoch (stages in order)")
    bottom.xaxis.get_major_locator().set_params(integer=True)
    right_end = max((off + max(r["epoch"] for r in run["rows"] if r["stage"] == st)
                     for run in curve.runs for st, off in _stage_offsets(run["rows"]).items()),
                    default=1)
    bottom.set_xlim(0.5, right_end + 0.5)  # whole epochs, also for a one-epoch stage
    # log scale for a decaying schedule; one rate (a one-epoch stage) stays linear, where a
    # log axis over a single value has no decade to label.
    if len(lrs) > 1 and min(lrs) > 0:
        bottom.set_yscale("log")
        bottom.yaxis.set_minor_formatter(NullFormatter())  # decades only: a short panel
    h1, l1 = top.get_legend_handles_labels()
    h2, l2 = right.get_legend_handles_labels()
    if h1 or h2:  # beside the panel: the curves stay readable
        top.legend(h1 + h2, l1 + l2, fontsize=6, loc="upper left", bbox_to_anchor=(1.12, 1.0))
    if bottom.get_lines():
        bottom.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.12, 1.0))
    names = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot"}
    seeds = ", ".join(f"{r['label']}: {names[styles[i % len(styles)]]}"
                      for i, r in enumerate(curve.runs))
    title = f"{curve.row} — {', '.join(curve.columns)}\n{seeds}"
    if label:
        title = f"{label} — not comparable to the paper\n{title}"
        fig.text(0.5, 0.5, label.split()[0].upper(), fontsize=34, color="#d9b44a", alpha=0.25,
                 ha="center", va="center", rotation=20)
    fig.suptitle(title, fontsize=8)
    return to_svg(fig)


def page_label(view: Any) -> str:
    """The label every curve of ``view`` carries: its tier and deviations ("" for a canonical
    full-tier page on real data)."""
    parts = []
    if view.tier == "shakedown":
        parts.append("SHAKEDOWN")
    elif view.synthetic or view.tier == "smoke":
        parts.append("SYNTHETIC smoke")
    elif view.tier == "smoke_recipe":
        parts.append("SMOKE RECIPE")
    parts += [f.upper() for f in view.flags if f.upper() not in parts]
    if [p for p in variant_parts(view.variant or "") if p != "subset"]:
        parts.append("VARIANT")
    return " + ".join(parts)


def add_curves(view: Any, cells_dir: Path, *, with_svg: bool) -> None:
    """Fill ``view.curves`` (and each figure's SVG when ``with_svg``)."""
    view.curves = table_curves(view, cells_dir, page_label(view))
    if with_svg:
        for c in view.curves:
            c.svg = draw(c, c.label)


def as_json(curves: list[Curve]) -> list[dict[str, Any]]:
    """The curves of a table for the JSON report: per row and column, each model's history
    rows and the pointer to its full metrics.csv (relative to the results folder)."""
    return [{"row": c.row, "columns": c.columns, "block": c.block or "headline",
             "label": c.label, "warnings": c.warnings,
             "monitoring": MONITORING_NOTE if c.monitored else None,
             "runs": [{k: r[k] for k in ("label", "cell_id", "history_file", "rows")}
                      for r in c.runs]} for c in curves]
