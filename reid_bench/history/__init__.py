"""A training's history: ``metrics.csv`` rows per epoch, per N steps and per monitoring
evaluation (``csvfile``), recorded while ``train_stage`` runs (``session``), optionally
mirrored to TensorBoard (``tensorboard``)."""

from .csvfile import FILE, plateaued, read_rows, write_rows
from .session import History, Monitor, current, stage_log, use

__all__ = ["FILE", "History", "Monitor", "current", "plateaued", "read_rows", "stage_log",
           "use", "write_rows"]
