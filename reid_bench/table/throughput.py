"""Measured training throughputs: the ``img_per_s`` of a table's shakedown rows, with the device
they ran on, which ``run --dry-run`` times a cell with when no ``--throughput`` is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store import results

# The device kind the GPU-hours are for: only a shakedown measured on it stands in for
# --throughput.
TARGET_KIND = "cuda"


@dataclass(frozen=True)
class Measured:
    rate: float  # training images per second
    kind: str  # device kind it was measured on: cpu | cuda | …
    name: str  # the device's name (results column device_name)


def shakedown_throughputs(csv: Path) -> dict[tuple, Measured]:
    """(row, dataset, split, seed, variant) → training images/s measured by a shakedown run,
    with the device it ran on, from the results CSV's ``img_per_s`` and ``device`` columns."""
    try:
        df = results.read_results(csv)
    except Exception:  # noqa: BLE001 - an unreadable CSV only means no measurement
        return {}
    if df.empty or "img_per_s" not in df.columns:
        return {}
    out = {}
    for r in df[(df["tier"] == "shakedown") & (df["status"] == "ok")].to_dict("records"):
        try:
            v = float(r["img_per_s"])
        except (TypeError, ValueError):
            continue
        device = r.get("device")
        if v > 0 and isinstance(device, str) and device:
            kind = device.split(":")[0]
            name = r.get("device_name") if isinstance(r.get("device_name"), str) else kind
            out[(r["row"], r["dataset"], results.split_of(r["split"]), int(r["seed"]),
                 r["variant"] or "")] = Measured(v, kind, name or kind)
    return out
