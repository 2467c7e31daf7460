"""Collect ``bench_*.py`` files and print the side-by-side table of bench_eval.py at the end."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pytest_collect_file(file_path, parent):
    # benchmark modules are named bench_*.py so the normal test run (testpaths = tests) and
    # `pytest benchmarks/` stay separate
    # (a file named on the command line is collected by pytest itself already)
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_terminal_summary(terminalreporter):
    results = []
    for name, mod in list(sys.modules.items()):
        if name.endswith("bench_eval") and getattr(mod, "RESULTS", None):
            results = mod.RESULTS
    if not results:
        return
    w = terminalreporter.write_line
    w("")
    w(f"reid-bench evaluation benchmarks ({platform.machine()}, python {platform.python_version()}); "
      "'call s' = time of the call alone in a fresh process, 'peak GiB' = its max RSS incl. inputs")
    w(f"{'task':11s} {'implementation':40s} {'call s':>8s} {'peak GiB':>9s} {'inputs GiB':>10s}  parity / result")
    sweep = [r for r in results if r["task"] == "eval_q"]
    if sweep:
        w("evaluation, model-quality sweep: fast-reid evaluate_cy (1 thread) vs evaluate_rank at "
          "1 / 2 threads; runs interleaved, ratio within each interleaved run")
        w(f"{'quality':12s} {'rank-1':>7s} {'mAP':>7s} {'fast-reid s':>16s} {'ours 1t s':>14s} "
          f"{'ours 2t s':>14s} {'ratio 1t':>14s} {'ratio 2t':>14s} {'CPU ratio':>14s} {'load':>10s} ties")

        def fmt(xs, spec=".2f"):
            return "/".join(format(x, spec) for x in xs)

        for r in sweep:
            w(f"{r['quality']:12s} {r['rank1']:7.3f} {r['mAP']:7.3f} {fmt(r['peer_s']):>16s} "
              f"{fmt(r['ours1_s'], '.3f'):>14s} {fmt(r['ours2_s'], '.3f'):>14s} "
              f"{fmt(r['ratio1'], '.1f'):>14s} {fmt(r['ratio2'], '.1f'):>14s} "
              f"{fmt([a / b for a, b in zip(r['peer_cpu_s'], r['ours1_cpu_s'], strict=True)], '.1f'):>14s} "
              f"{fmt(r['load1'], '.1f'):>10s} {r['tie_queries']}")
    for r in results:
        if r["task"] == "eval_q":
            continue
        res = r.get("parity") or (f"mAP={r['mAP']:.6f}" if "mAP" in r else "")
        if "ratio" in r:
            res += f"; reference/this: {r['ratio']:.1f}× wall, {r['cpu_ratio']:.1f}× CPU"
        w(f"{r['task']:11s} {r['label']:40s} {r['seconds']:8.2f} {r['peak_gb']:9.2f} "
          f"{r.get('rss_inputs_gb', float('nan')):10.2f}  {res}")
