"""Report figures as inline SVG strings (matplotlib, no pyplot state, text kept as text).

- ``param_sweeps``: rows that differ only in one numeric param (LEDF's ``K``) → one curve of the
  published numbers and one of ours (mean ± std over seeds) against that param.
- ``gallery_sweeps``: metrics written ``rank1@N`` (Market-1501 + 500k distractors) → each row's
  published and reproduced curve against the gallery size N.
- ``ablation_bars``: every runnable row, published vs reproduced, grouped per metric.
- ``cmc_curves``: the CMC arrays the runner saves per cell (``<cell_id>.json`` key ``cmc``).

Figures draw the headline numbers only (``report.view``), each with its flags
(``rowstate``): a flagged number's point or bar is labelled with its flags in the figure, a
number whose verdict is withheld is drawn in the "not comparable" colour, and the figure's
title lists every flag it shows (``Plot.flags``). Figures with synthetic numbers also carry a
"SYNTHETIC" watermark.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..core.errors import ResultsError
from ..core.safepath import inside

PUB_STYLE = {"color": "#555555", "linestyle": "--", "marker": "s"}
OURS_STYLE = {"color": "#1f5fa8", "linestyle": "-", "marker": "o"}
RC = {"svg.fonttype": "none", "svg.hashsalt": "reid-bench", "font.size": 9,
      "axes.spines.top": False, "axes.spines.right": False}


@dataclass
class Plot:
    """A titled inline SVG figure."""

    kind: str  # sweep | gallery | bars | cmc
    title: str
    svg: str
    flags: list[str] = field(default_factory=list)  # every flag of a number it draws


def to_svg(fig: Figure) -> str:
    """Serialise ``fig`` to an ``<svg>`` element (no XML prolog; natural size, the page's CSS
    shrinks it to fit)."""
    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # The RDF metadata block (creation date, tool) only adds churn to the page.
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    return text


FLAGGED_STYLE = {"color": "#d9a400", "hatch": ".."}  # a number whose verdict is withheld


def _flags_of(nums: Sequence[Any]) -> list[str]:
    from ..table.rowstate import merge_flags_text

    return merge_flags_text(f for n in nums if n.mean is not None for f in n.flags)


def _withheld(n: Any) -> bool:
    from .verdicts import WITHHELD

    return n.verdict.key in WITHHELD


def _flag_note(ax: Any, x: float, y: float, n: Any) -> None:
    """Write ``n``'s flags beside its point or bar (nothing for an unflagged number)."""
    if n.flags and n.mean is not None:
        ax.annotate(", ".join(n.flags), (x, y), xytext=(0, 4), textcoords="offset points",
                    fontsize=6, rotation=90, ha="center", va="bottom", color="#6b4e00")


def _figure(n_panels: int, synthetic: bool, title: str, width: float = 3.6,
            flags: Sequence[str] = ()) -> tuple[Figure, list]:
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(max(width * n_panels, 4.5), 3.2), layout="constrained")
        axes = [fig.add_subplot(1, n_panels, i + 1) for i in range(n_panels)]
    if flags:
        title = f"flagged: {', '.join(flags)}\n{title}"
    if synthetic:
        title = f"SYNTHETIC smoke data — not comparable to the paper\n{title}"
        fig.text(0.5, 0.45, "SYNTHETIC", fontsize=40, color="#d9b44a", alpha=0.25,
                 ha="center", va="center", rotation=20)
    fig.suptitle(title, fontsize=10)
    return fig, axes


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def find_param_sweeps(rows: Sequence[Any]) -> list[tuple[str, list[Any]]]:
    """``(param, rows sorted by it)`` for groups of ≥ 3 rows with the same method that differ
    only in one numeric param."""
    out = []
    keys = sorted({k for r in rows for k, v in (r.params or {}).items() if _num(v)})
    for k in keys:
        groups: dict[str, list[Any]] = {}
        for r in rows:
            if not _num((r.params or {}).get(k)):
                continue
            rest = {kk: vv for kk, vv in r.params.items() if kk != k}
            sig = json.dumps([r.method, rest, r.datasets], sort_keys=True, default=str)
            groups.setdefault(sig, []).append(r)
        for grp in groups.values():
            if len({r.params[k] for r in grp}) >= 3:
                out.append((k, sorted(grp, key=lambda r: r.params[k])))
    return out


def param_sweeps(view: Any) -> list[Plot]:
    plots = []
    for key, rows in find_param_sweeps([rv.row for rv in view.rows]):
        by_name = {rv.name: rv for rv in view.rows}
        cols = [(ds, m) for ds, m in view.columns if "@" not in m]
        flags = _flags_of([by_name[r.name].numbers[c] for r in rows for c in cols])
        fig, axes = _figure(len(cols), view.synthetic, f"{key} sweep: published vs reproduced",
                            flags=flags)
        xs = [r.params[key] for r in rows]
        for ax, (ds, m) in zip(axes, cols, strict=True):
            nums = [by_name[r.name].numbers[(ds, m)] for r in rows]
            pub = [n.published if n.published is not None else np.nan for n in nums]
            ax.plot(xs, pub, label="published", **PUB_STYLE)
            ours = [n.mean if n.mean is not None else np.nan for n in nums]
            err = [n.std or 0.0 for n in nums]
            if not all(np.isnan(ours)):
                ax.errorbar(xs, ours, yerr=err, label="reproduced", capsize=3, **OURS_STYLE)
                for x, n in zip(xs, nums, strict=True):
                    _flag_note(ax, x, n.mean or 0.0, n)
            ax.set_xlabel(key)
            ax.set_ylabel(f"{m} (%)")
            ax.set_title(view.spec.datasets[ds].label or ds, fontsize=9)
            ax.set_xticks(xs)
            ax.legend(fontsize=8)
        plots.append(Plot("sweep", f"{key} sweep", to_svg(fig), flags))
    return plots


def gallery_sweeps(view: Any) -> list[Plot]:
    """One panel per (column, base metric) with ``@N`` metrics; x = gallery size N."""
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for ds, m in view.columns:
        if "@" in m:
            base, n = m.split("@", 1)
            if n.isdigit():
                groups.setdefault((ds, base), []).append((int(n), m))
    plots = []
    for (ds, base), pts in groups.items():
        pts.sort()
        flags = _flags_of([rv.numbers[(ds, m)] for rv in view.rows for _, m in pts])
        fig, axes = _figure(1, view.synthetic, f"{base} vs gallery size "
                            f"({view.spec.datasets[ds].label or ds})", width=6.5, flags=flags)
        ax = axes[0]
        xs = [n for n, _ in pts]
        cmap = matplotlib.colormaps["tab10"]
        for i, rv in enumerate(r for r in view.rows if any(
                r.numbers[(ds, m)].published is not None for _, m in pts)):
            c = cmap(i % 10)
            pub = [rv.numbers[(ds, m)].published for _, m in pts]
            ax.plot(xs, [np.nan if v is None else v for v in pub], color=c, linestyle="--",
                    marker="s", alpha=0.6 if rv.runnable else 0.3,
                    label=f"{rv.name} (published)")
            ours = [rv.numbers[(ds, m)].mean for _, m in pts]
            if any(v is not None for v in ours):
                ax.errorbar(xs, [np.nan if v is None else v for v in ours],
                            yerr=[rv.numbers[(ds, m)].std or 0.0 for _, m in pts], color=c,
                            marker="o", capsize=3, label=f"{rv.name} (reproduced"
                            + "".join(f", {f}" for f in _flags_of(
                                [rv.numbers[(ds, m)] for _, m in pts])) + ")")
        ax.set_xscale("log")
        ax.set_xlabel("gallery size (images)")
        ax.set_ylabel(f"{base} (%)")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
        plots.append(Plot("gallery", f"{base} vs gallery size", to_svg(fig), flags))
    return plots


def ablation_bars(view: Any) -> list[Plot]:
    """Grouped bars (published, reproduced ± std) per runnable row, one panel per metric."""
    plots = []
    for ds in view.spec.datasets:
        metrics = [m for d, m in view.columns if d == ds and "@" not in m]
        rows = [rv for rv in view.rows if rv.runnable and rv.in_column(ds)]
        if not rows or not metrics:
            continue
        flags = _flags_of([rv.numbers[(ds, m)] for rv in rows for m in metrics])
        fig, axes = _figure(len(metrics), view.synthetic,
                            f"{view.spec.datasets[ds].label or ds}: published vs reproduced",
                            width=max(3.6, 0.45 * len(rows) + 1.5), flags=flags)
        x = np.arange(len(rows))
        for ax, m in zip(axes, metrics, strict=True):
            nums = [rv.numbers[(ds, m)] for rv in rows]
            pub = [np.nan if n.published is None else n.published for n in nums]
            ours = [np.nan if n.mean is None else n.mean for n in nums]
            ax.bar(x - 0.2, pub, 0.4, label="published", color="#bbbbbb", edgecolor="#555555",
                   hatch="//")
            plain = [np.nan if _withheld(n) else v for n, v in zip(nums, ours, strict=True)]
            held = [v if _withheld(n) else np.nan for n, v in zip(nums, ours, strict=True)]
            ax.bar(x + 0.2, plain, 0.4, yerr=[n.std or 0.0 for n in nums], capsize=2,
                   label="reproduced", color="#1f5fa8")
            if not all(np.isnan(held)):
                ax.bar(x + 0.2, held, 0.4, yerr=[n.std or 0.0 for n in nums], capsize=2,
                       label="ours, not comparable (flagged)", edgecolor="#6b4e00",
                       **FLAGGED_STYLE)
            for xi, n in zip(x, nums, strict=True):
                _flag_note(ax, xi + 0.2, n.mean or 0.0, n)
                if n.mean is None:
                    ax.text(xi + 0.2, 1, "not run" if n.status != "failed" else "failed",
                            rotation=90, fontsize=7, ha="center", va="bottom")
            ax.set_xticks(x)
            ax.set_xticklabels([rv.name for rv in rows], rotation=45, ha="right", fontsize=7)
            ax.set_ylabel(f"{m} (%)")
            ax.legend(fontsize=7)
        plots.append(Plot("bars", f"{view.spec.datasets[ds].label or ds}: published vs "
                                  "reproduced", to_svg(fig), flags))
    return plots


def load_cmc(path: Path) -> list[float] | None:
    """The CMC array (fractions in [0, 1]) of one per-cell JSON file; None when absent."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cmc = data.get("cmc") if isinstance(data, dict) else None
    if not isinstance(cmc, list) or not cmc:
        return None
    arr = [float(v) for v in cmc]
    return [v / 100.0 for v in arr] if max(arr) > 1.0 + 1e-6 else arr


def cmc_curves(view: Any, cells_dir: Path, max_rank: int = 20) -> list[Plot]:
    """Mean CMC over seeds per row, one figure per dataset column with saved arrays."""
    plots = []
    for ds in view.spec.datasets:
        curves: list[tuple[str, np.ndarray]] = []
        for rv in view.rows:
            arrs = []
            for c in rv.cells:
                if c.get("dataset") != ds or c.get("status") != "ok" or not isinstance(
                        c.get("cell_id"), str):
                    continue
                # cell_id comes from the (untrusted) CSV: read only files of this table.
                try:
                    path = inside(cells_dir, cells_dir / f"{c['cell_id']}.json")
                except ResultsError:
                    continue
                cmc = load_cmc(path)
                if cmc:
                    arrs.append(np.asarray(cmc[:max_rank]) * 100.0)
            if arrs:
                n = min(len(a) for a in arrs)
                fl = _flags_of([num for (d, _), num in rv.numbers.items() if d == ds])
                name = rv.name + (f" [{', '.join(fl)}]" if fl else "")
                curves.append((name, np.mean([a[:n] for a in arrs], axis=0)))
        if not curves:
            continue
        flags = _flags_of([num for rv in view.rows for (d, _), num in rv.numbers.items()
                           if d == ds])
        fig, axes = _figure(1, view.synthetic, f"CMC ({view.spec.datasets[ds].label or ds})",
                            width=6.5, flags=flags)
        ax = axes[0]
        for name, y in curves:
            ax.plot(np.arange(1, len(y) + 1), y, marker=".", label=name)
        ax.set_xlabel("rank")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("matching rate (%)")
        ax.legend(fontsize=7, loc="lower right")
        plots.append(Plot("cmc", f"CMC curves ({view.spec.datasets[ds].label or ds})",
                          to_svg(fig), flags))
    return plots


def all_plots(view: Any, cells_dir: Path) -> list[Plot]:
    """Every figure for one table page, sweeps first."""
    sweeps = param_sweeps(view)
    swept = {r.name for _, rows in find_param_sweeps([rv.row for rv in view.rows]) for r in rows}
    runnable = {rv.name for rv in view.rows if rv.runnable}
    # A table that is one sweep gets its curve, not a bar chart repeating it.
    bars = ablation_bars(view) if not runnable <= swept else []
    return [*sweeps, *gallery_sweeps(view), *bars, *cmc_curves(view, cells_dir)]
