"""Slurm job arrays through submitit (debug executor), the torchrun command, and
``reid-bench status`` on a results folder with done / failed / stale / running / pending cells."""

import json
import sys

import pytest
import yaml
from click.testing import CliRunner
from filelock import FileLock
from toyspec import (
    register_plugin,
    splits_column,
    tiny_recipe,
    tiny_rows,
    toy_spec,
    write_spec,
)

from reid_bench.cli import main
from reid_bench.core.errors import ReidBenchError
from reid_bench.core.hashing import stable_hash
from reid_bench.run.launch import options_to_dict, pending_cells
from reid_bench.run.launch.slurm import (
    SlurmConfig,
    executor_parameters,
    load_site_config,
    parse_minutes,
    submit,
)
from reid_bench.run.launch.torchrun import torchrun_command
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.plan import plan

SPEC = toy_spec("""\
rows:
  - name: IDE A
    method: ide
    published: {market: {rank1: 70.0, mAP: 50.0}}
  - name: IDE B
    method: ide
    params: {dropout: 0.25}
    published: {market: {rank1: 71.0, mAP: 51.0}}
""", extra="seeds: 3\n", caption="tiny IDE table", smoke="""\
smoke:
  recipe:
    input: {height: 32, width: 16, resize: [32, 16]}
    backbone: {pretrained: none, width: 0.25}
    train: {epochs: 1, lr: 0.05, batch_size: 32}
""")


@pytest.fixture()
def setup(tmp_path, shared_data_root):
    p = write_spec(tmp_path, SPEC)
    spec = load_spec(p)
    opts = RunOptions(results_dir=tmp_path / "results", data_root=shared_data_root, smoke=True)
    return p, spec, Runner(spec, opts)


def _write(runner, cell, status, chash=None):
    results.upsert_row(runner.csv, {
        "paper": "demo", "table": "table1", "row": cell.row.name, "dataset": cell.dataset,
        "seed": cell.seed, "tier": cell.tier, "split": cell.split, "smoke": cell.smoke,
        "status": status, "error": "boom" if status != "ok" else None,
        "config_hash": chash or stable_hash(runner.cell_config(cell)), "cell_id": cell.id,
        # as the runner records it: a row is finished only for the data it was computed on
        "dataset_fingerprint": runner.data_fingerprint(runner.cell_config(cell))})


SPLITS_TABLE = toy_spec(
    tiny_rows([{"name": "a"}]), recipe=tiny_recipe(epochs=1), extra="seeds: 2\n",
    datasets="datasets:\n" + splits_column("market", 2))


def test_slurm_array_one_task_per_pending_cell(tmp_path, shared_data_root):
    """A full-tier table of 2 splits × 2 seeds: the finished cell is not resubmitted, the
    failed and stale ones are; each task carries its cell's whole key (split included), written
    out by hand here, and really runs that cell."""
    register_plugin()
    path = write_spec(tmp_path, SPLITS_TABLE)
    spec = load_spec(path)
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "results",
                                     data_root=shared_data_root))
    cells = plan(spec)
    assert [(c.split, c.seed) for c in cells] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    _write(runner, cells[0], "ok")                   # finished: not resubmitted
    _write(runner, cells[1], "failed")               # failed: resubmitted
    _write(runner, cells[2], "ok", chash="old")      # finished with an old config: resubmitted
    todo = pending_cells(spec, runner.opts, cells)
    assert [c.id for c in todo] == [c.id for c in cells[1:]]
    cfg = load_site_config(None, partition="gpu", time="1:30:00", array_parallelism=2)
    opts = options_to_dict(runner.opts)
    jobs = submit(str(path), todo, opts, cfg, cluster="debug")
    assert [j.submission().args for j in jobs] == [
        (str(path), {"row": "a", "dataset": "market", "seed": 1, "tier": "full", "split": 0,
                     "variant": ""}, opts, 1),
        (str(path), {"row": "a", "dataset": "market", "seed": 0, "tier": "full", "split": 1,
                     "variant": ""}, opts, 1),
        (str(path), {"row": "a", "dataset": "market", "seed": 1, "tier": "full", "split": 1,
                     "variant": ""}, opts, 1)]
    # The last task really runs split 1, seed 1 and lands in the shared CSV; it is then not
    # pending.
    out = jobs[2].result()
    assert out["ok"] and len(out["done"]) == 1
    df = results.read_results(runner.csv)
    ran = df[df["status"] == "ok"].set_index("cell_id").loc[out["done"][0]]
    assert (ran["row"], ran["seed"], ran["tier"], ran["split"]) == ("a", 1, "full", 1)
    assert ran["accel"] == "fp32" and df["accel"].notna().sum() == 1
    assert [c.id for c in pending_cells(spec, runner.opts, cells)] == [c.id for c in todo[:2]]


def test_site_config_and_cli_overrides(tmp_path, monkeypatch):
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"partition": "a100", "time": "2-00:00:00", "gpus_per_node": 4,
                                    "account": "lab", "setup": ["module load cuda"]}))
    cfg = load_site_config(site, partition="h100", time=None)
    assert (cfg.partition, cfg.time, cfg.gpus_per_node) == ("h100", 2880, 4)
    p = executor_parameters(cfg, "job")
    assert p["slurm_partition"] == "h100" and p["timeout_min"] == 2880
    assert p["gpus_per_node"] == 4 and p["slurm_account"] == "lab"
    assert p["slurm_setup"] == ["module load cuda"] and p["slurm_array_parallelism"] == 16
    assert parse_minutes("90") == 90 and parse_minutes("1:30:00") == 90
    site.write_text("partiton: typo\n")
    with pytest.raises(ReidBenchError, match="partiton"):
        load_site_config(site)
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, even on a Slurm login node
    monkeypatch.delenv("REID_BENCH_SUBMITIT_CLUSTER", raising=False)
    with pytest.raises(ReidBenchError, match="srun|Slurm"):
        submit("x.yaml", plan(load_spec_text(tmp_path), smoke=True)[:1],
               {"results_dir": str(tmp_path)}, SlurmConfig())


def load_spec_text(tmp_path):
    return load_spec(write_spec(tmp_path, SPEC))


def test_cli_slurm_launcher_submits_pending(setup, monkeypatch):
    path, spec, runner = setup
    monkeypatch.setenv("REID_BENCH_SUBMITIT_CLUSTER", "debug")
    _write(runner, plan(spec, smoke=True)[0], "ok")
    res = CliRunner().invoke(main, ["run", str(path), "--smoke", "--launcher", "slurm",
                                    "--results-dir", str(runner.opts.results_dir),
                                    "--slurm-partition", "gpu", "--slurm-time", "30"])
    assert res.exit_code == 0, res.output
    assert "5 of 6 cell(s) pending" in res.output and "submitted 5 Slurm task(s)" in res.output


def test_torchrun_command(setup):
    path, spec, runner = setup
    cell = plan(spec, smoke=True)[4]
    cmd = torchrun_command(str(path), cell, {"smoke": True}, 4)
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc-per-node=4"]
    # The full cell key travels (split and tier included), written out by hand here.
    assert json.loads(cmd[cmd.index("--cells") + 1]) == [
        {"row": "IDE B", "dataset": "market", "seed": 1, "tier": "smoke", "split": None,
         "variant": ""}]


def test_status_counts_every_state(setup):
    path, spec, runner = setup
    cells = plan(spec, smoke=True)
    _write(runner, cells[0], "ok")
    _write(runner, cells[1], "diverged")
    _write(runner, cells[2], "ok", chash="old")
    runner.cells_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(runner.cells_dir / f".{cells[3].id}.running.lock"))
    # a finished runner leaves its (released) lock file behind: not running
    with FileLock(str(runner.cells_dir / f".{cells[4].id}.running.lock")):
        pass
    args = ["status", str(path), "--smoke", "--results-dir", str(runner.opts.results_dir)]
    with lock:
        res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == ("demo/table1 [smoke] (synthetic data): 6 cell(s) — 1 done, 1 running, "
                        "1 failed, 1 stale, 2 pending")
    assert "  failed       IDE A × market (seed 1) — diverged: boom" in lines
    assert "  running      IDE B × market (seed 0)" in lines
    assert "  pending      IDE B × market (seed 1)" in lines
    res = CliRunner().invoke(main, args + ["--quiet"])  # lock released: pending again
    assert res.output.strip() == ("demo/table1 [smoke] (synthetic data): 6 cell(s) — 1 done, "
                                  "1 failed, 1 stale, 3 pending")


def _rank_main(rank, port, spec_path, refs, options):
    import os

    import torch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from reid_bench.run.launch.worker import run_cells

    summary = run_cells(spec_path, refs, options)
    if rank == 0 and not summary.ok:
        raise SystemExit(f"rank 0 summary not ok: {summary.failed}")


@pytest.mark.slow
def test_torchrun_worker_two_ranks_rank0_writes(setup):
    """What `--launcher torchrun --nproc 2` runs in each process (forked here instead of
    torchrun to skip two interpreter start-ups): both ranks train, rank 0 alone records."""
    import socket

    import torch._dynamo  # noqa: F401  (imported once before forking; DDP/c10d need it)
    import torch.multiprocessing as mp

    path, spec, runner = setup
    cell = plan(spec, smoke=True)[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = options_to_dict(runner.opts)
    ref = {"row": "IDE A", "dataset": "market", "seed": 0, "tier": "smoke", "split": None,
           "variant": ""}
    mp.start_processes(_rank_main, args=(port, str(path), [ref], opts), nprocs=2,
                       join=True, start_method="fork")
    df = results.read_results(runner.csv)
    assert df["cell_id"].tolist() == [cell.id] and df["status"].tolist() == ["ok"]
    assert df["accel"].tolist() == ["fp32+ddp2"]
    assert pending_cells(spec, runner.opts, [cell]) == []
