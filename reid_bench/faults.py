"""Named fault-injection points for the reliability tests.

``fault_point("csv_before_rename")`` kills the process with SIGKILL when the environment
variable ``REID_BENCH_FAULT`` names that point (optionally ``name:N`` = on its N-th visit), so a
test can crash the runner exactly between two steps that must be atomic. Costs one dict lookup
when unset.
"""

from __future__ import annotations

import os
import signal

_visits: dict[str, int] = {}


def fault_point(name: str) -> None:
    want = os.environ.get("REID_BENCH_FAULT")
    if not want:
        return
    point, _, nth = want.partition(":")
    if point != name:
        return
    _visits[name] = _visits.get(name, 0) + 1
    if _visits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
