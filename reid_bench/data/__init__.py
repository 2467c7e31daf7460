"""Datasets: one module per dataset, each registering a loader in ``registry.DATASETS``."""

from .base import ReidDataset, Sample, load_dataset, resolve_data_root

__all__ = ["ReidDataset", "Sample", "load_dataset", "resolve_data_root"]
