"""Named fault-injection points for the reliability tests.

``fault_point("csv_before_rename")`` kills the process with SIGKILL when the environment
variable ``REID_BENCH_FAULT`` names that point (optionally ``name:N`` = on its N-th visit), so a
test can crash the runner exactly between two steps that must be atomic. Costs one dict lookup
when unset.

``REID_BENCH_FAULT=enospc:<glob>`` makes every atomic write of a file whose name matches
``<glob>`` fail as on a full disk (``OSError`` ENOSPC, ``disk_full_point``), so the disk-full
handling is tested without mounting a small file system.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
from pathlib import Path

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


def disk_full_point(path: Path) -> None:
    """Raise ENOSPC for ``path`` when ``REID_BENCH_FAULT=enospc:<glob>`` matches its name."""
    want = os.environ.get("REID_BENCH_FAULT", "")
    if want.startswith("enospc:") and fnmatch.fnmatch(Path(path).name, want[len("enospc:"):]):
        raise OSError(errno.ENOSPC, "No space left on device (injected)", str(path))
