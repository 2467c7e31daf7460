import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_network_weights(monkeypatch):
    # Tests never download weights or data.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _console_restored():
    """The library's console state (handlers, logger levels, quiet) as it was before each test:
    a test that configures the console and does not restore it (a CLI command whose context
    did not close, an in-process launcher task) must not change what later tests print."""
    import logging

    from reid_bench.core import console

    names = (console.LIBRARY, *console.TRAINING_LOGGERS)
    levels = {n: logging.getLogger(n).level for n in names}
    handlers = list(logging.getLogger(console.LIBRARY).handlers)
    state = dict(console._state)
    yield
    lib = logging.getLogger(console.LIBRARY)
    lib.handlers[:] = handlers
    for n, lvl in levels.items():
        logging.getLogger(n).setLevel(lvl)
    console._state.clear()
    console._state.update(state)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory):
    """Derived files (synthetic data, extracted CUHK03 images) go to one cache folder per test
    session, never the user's ~/.cache; subprocesses inherit it through the environment. A test
    that modifies cached files sets its own with monkeypatch."""
    old = os.environ.get("REID_BENCH_CACHE")
    os.environ["REID_BENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("REID_BENCH_CACHE", None)
    else:
        os.environ["REID_BENCH_CACHE"] = old


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test only (for tests that modify cached files)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("REID_BENCH_CACHE", str(path))
    return path


@pytest.fixture()
def no_caches(tmp_path, monkeypatch) -> Path:
    """Empty torch hub / HF / reid-bench weight caches and no weights dir: a weight set is found
    only where the test puts it."""
    from reid_bench.weights import store

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(store.ENV_DIR, raising=False)
    monkeypatch.setattr(store, "_hf_cached", lambda tag: None)
    return tmp_path


@pytest.fixture(scope="session")
def shared_data_root(tmp_path_factory) -> Path:
    """One data root per test session, so the synthetic dataset is generated once."""
    return tmp_path_factory.mktemp("data")


def pytest_configure(config):
    # One intra-op thread per process unless the caller says otherwise: the tests' models are
    # tiny (threads cost more than they give), and many tests run subprocesses (launchers,
    # kills, torchrun ranks) beside the test process, which oversubscribes two cores.
    # On 2 cores, `.ci/run` end to end: 620 s with 2 threads; 586 s and 616 s with 1 (the
    # difference is within run-to-run noise, about 30 s).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
