"""Default data-loader workers: sized to the CPUs on CUDA, none on CPU."""

from pathlib import Path

import pytest

from reid_bench.cli import main
from reid_bench.data.samplers import default_num_workers


@pytest.mark.parametrize("cpus, procs, expected", [
    (32, None, 8),   # capped at 8
    (32, "8", 4),    # 8 torchrun ranks on the node share 32 CPUs
    (6, None, 6),
    (1, "2", 1),     # never 0 on CUDA
])
def test_cuda_default_follows_the_cpus(monkeypatch, cpus, procs, expected):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    monkeypatch.delenv("REID_BENCH_PROCS_PER_NODE", raising=False)
    if procs is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", procs)
    assert default_num_workers("cuda") == expected
    assert default_num_workers("cuda:1") == expected


def test_cpu_default_is_zero_and_cli_leaves_it_to_the_device(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert default_num_workers("cpu") == 0
    opt = next(p for p in main.commands["run"].params if p.name == "num_workers")
    assert opt.default is None  # resolved per process, for its device


def test_runner_resolves_none(tmp_path):
    from reid_bench.run.runner import Runner, RunOptions
    from reid_bench.spec import load_spec

    root = Path(__file__).resolve().parents[1]
    spec = load_spec(root / "papers" / "fmn" / "table5.yaml")
    assert Runner(spec, RunOptions(results_dir=tmp_path, num_workers=None)).num_workers == 0
    assert Runner(spec, RunOptions(results_dir=tmp_path, num_workers=3)).num_workers == 3
