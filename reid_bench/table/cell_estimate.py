"""One cell's ``run --dry-run`` estimate: its training stages (epochs × images per epoch), the
throughput it is timed with and where that came from, the training it shares, and the
GPU-hours that follow (``table.estimate.Estimator`` fills it in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stage:
    name: str
    epochs: int
    images_per_epoch: int | None
    shared_with: str | None = None  # id of the cell that trains this shared stage

    @property
    def images(self) -> int | None:
        """Images this cell's training of the stage processes (0 when shared)."""
        if self.shared_with is not None:
            return 0
        return None if self.images_per_epoch is None else self.epochs * self.images_per_epoch


@dataclass
class CellEstimate:
    cell: Any
    stages: list[Stage] = field(default_factory=list)
    throughput: float | None = None  # training images per second per GPU
    throughput_source: str = ""  # "--throughput" | "shakedown on <device>" | ""
    throughput_note: str = ""  # a measurement that was not used, and why
    shared_with: str | None = None  # id of the cell whose identical training this reuses
    # The row's declared same_as for this column (another table's row, one shared training);
    # counted here unless that table's cell came first in this plan (then shared_with).
    same_as: str | None = None
    problem: str = ""  # why nothing could be estimated
    size_note: str = ""  # how the training split size was found, when not published exactly

    @property
    def epochs(self) -> int:
        return sum(s.epochs for s in self.stages)

    @property
    def images_per_epoch(self) -> int | None:
        sizes = {s.images_per_epoch for s in self.stages}
        return sizes.pop() if len(sizes) == 1 else None

    @property
    def total_images(self) -> int | None:
        if not self.stages or any(s.images is None for s in self.stages):
            return None
        return sum(s.images for s in self.stages)

    @property
    def gpu_hours(self) -> float | None:
        if self.shared_with is not None:
            return 0.0
        if self.total_images is None or not self.throughput:
            return None
        return self.total_images / self.throughput / 3600
