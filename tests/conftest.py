import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_network_weights(monkeypatch):
    # Tests never download weights or data.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def shared_data_root(tmp_path_factory) -> Path:
    """One data root per test session, so the synthetic dataset is generated once."""
    return tmp_path_factory.mktemp("data")


def pytest_configure(config):
    os.environ.setdefault("OMP_NUM_THREADS", "2")
