"""Print the side-by-side table of benchmarks/bench_eval.py at the end of the session."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pytest_terminal_summary(terminalreporter):
    try:
        from benchmarks.bench_eval import RESULTS
    except Exception:  # noqa: BLE001
        return
    if not RESULTS:
        return
    w = terminalreporter.write_line
    w("")
    w(f"reid-bench evaluation benchmarks — {platform.processor() or platform.machine()}, "
      f"python {platform.python_version()}")
    w(f"{'task':12s} {'implementation':42s} {'call s':>9s} {'peak GiB':>9s}  parity / result")
    for r in RESULTS:
        res = r.get("parity") or (f"mAP={r['mAP']:.6f}" if "mAP" in r else "")
        w(f"{r['task']:12s} {r['label']:42s} {r['seconds']:9.2f} {r['peak_gb']:9.2f}  {res}")
