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
    for r in results:
        res = r.get("parity") or (f"mAP={r['mAP']:.6f}" if "mAP" in r else "")
        w(f"{r['task']:11s} {r['label']:40s} {r['seconds']:8.2f} {r['peak_gb']:9.2f} "
          f"{r.get('rss_inputs_gb', float('nan')):10.2f}  {res}")
