"""Launchers end to end on a ``splits: 20`` column (full tier, so splits apply): every split
is planned, shown by ``--dry-run``, run and recorded under torchrun and ``--nproc``; a failing
follower rank gets its cell recorded failed (with its traceback) within a minute, and the
cells after it still run."""

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from toyspec import PLUGINS, ROOT, splits_column, tiny_recipe, toy_spec, write_spec

from reid_bench.cli import main
from reid_bench.store import results

DATASETS = ("datasets:\n" + splits_column("cuhk", 20, height=32, width=16)
            + splits_column("one", None, height=32, width=16))


# Row "tiny" runs on the 20-split column; the failure-injecting rows on the one-split column
# (so one torchrun invocation tests both, saving job start-ups).
ROWS = {"tiny": ("cuhk", {}),
        "killed": ("one", {"kill_rank": 1, "kill_stamp": "STAMP"}),  # SIGKILL: no traceback
        "raises": ("one", {"raise_rank": 1})}                        # an exception on rank 1


def write_table(tmp_path: Path, rows: list[str]) -> Path:
    body = "".join(f"  - name: {name}\n    method: test_tiny\n    datasets: [{ROWS[name][0]}]\n"
                   f"    params: {json.dumps(ROWS[name][1])}\n"
                   f"    published: {{{ROWS[name][0]}: {{rank1: 50.0, mAP: 30.0}}}}\n"
                   for name in rows)
    return write_spec(tmp_path, toy_spec(
        "rows:\n" + body.replace("STAMP", str(tmp_path / "killed_at")), datasets=DATASETS,
        recipe=tiny_recipe(epochs=1, batch_size=8), caption="splits"))


@pytest.fixture()
def plugin_env(monkeypatch):
    """The subprocesses (torchrun ranks, pool workers) import the test plugin."""
    sys.path.insert(0, str(PLUGINS))
    monkeypatch.setenv("REID_BENCH_PLUGINS", "rb_test_methods")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), str(PLUGINS), os.environ.get("PYTHONPATH", "")]))


def run(spec: Path, tmp_path: Path, data_root: Path, *extra: str):
    return CliRunner().invoke(main, ["run", str(spec), "--results-dir", str(tmp_path / "r"),
                                     "--data-root", str(data_root), "--device", "cpu",
                                     "--checkpoint-every", "0", *extra])


def test_dry_run_lists_every_split_for_every_launcher(tmp_path, plugin_env):
    spec = write_table(tmp_path, ["tiny"])
    for launcher in (["--launcher", "torchrun", "--nproc", "2"], ["--nproc", "2"],
                     ["--launcher", "slurm"], []):
        res = run(spec, tmp_path, tmp_path / "data", "--dry-run", *launcher)
        assert res.exit_code == 0, res.output
        lines = [ln for ln in res.output.splitlines() if ln.startswith("  tiny")]
        assert [int(ln.split("split")[1].split()[0]) for ln in lines] == list(range(20))
        assert "launch:" in res.output
    assert not (tmp_path / "r").exists()
    # status names each split: 20 distinct pending lines, and the per-column split count
    res = CliRunner().invoke(main, ["status", str(spec), "--results-dir", str(tmp_path / "r")])
    pending = [ln for ln in res.output.splitlines() if ln.startswith("  pending")]
    assert pending == [f"  pending      tiny × cuhk (split {i}, seed 0)" for i in range(20)]
    assert "  tiny × cuhk: 0/20 splits done" in res.output.splitlines()


def assert_20_splits_ok(df):
    df = df[df["row"] == "tiny"]
    assert sorted(int(s) for s in df["split"]) == list(range(20))
    assert (df["status"] == "ok").all() and (df["tier"] == "full").all()
    assert df["cell_id"].is_unique


@pytest.mark.slow
def test_nproc_pool_runs_all_20_splits(tmp_path, shared_data_root, plugin_env):
    spec = write_table(tmp_path, ["tiny"])
    res = run(spec, tmp_path, shared_data_root, "--nproc", "2")
    assert res.exit_code == 0, res.output
    assert_20_splits_ok(results.read_results(results.table_csv(tmp_path / "r", "demo", "table1")))
    # status: nothing left, every split counted
    res = CliRunner().invoke(main, ["status", str(spec), "--results-dir", str(tmp_path / "r")])
    assert res.output.splitlines()[:2] == ["demo/table1 [full]: 20 cell(s) — 20 done, "
                                           "0 pending",
                                           "  tiny × cuhk: 20/20 splits done"], res.output


@pytest.mark.slow
def test_torchrun_runs_all_20_splits_and_records_failing_ranks(tmp_path, shared_data_root,
                                                                plugin_env):
    """One torchrun invocation: the 20 splits train with 2 ranks each; then a follower rank
    is SIGKILLed mid-step (cell "killed"), the job is relaunched for the remaining cell, whose
    follower raises (cell "raises"). Both are recorded failed, the kill within 60 s."""
    spec = write_table(tmp_path, ["tiny", "killed", "raises"])
    t0 = time.time()
    res = run(spec, tmp_path, shared_data_root, "--launcher", "torchrun", "--nproc", "2")
    wall = time.time() - t0
    assert res.exit_code == 1, res.output  # two cells not ok
    df = results.read_results(results.table_csv(tmp_path / "r", "demo", "table1"))
    assert_20_splits_ok(df)
    tiny = df[df["row"] == "tiny"]
    assert set(tiny["accel"]) == {"fp32+ddp2"}  # trained by the two ranks together
    assert set(tiny["trained_world_size"].astype(int)) == {2}
    df = df.set_index("row")
    assert df.loc["killed", "status"] == "failed"
    assert "rank 1 of 2 died" in df.loc["killed", "error"]
    assert df.loc["raises", "status"] == "failed"  # ran: the job was relaunched after "killed"
    assert df.loc["raises", "error"] == ("rank 1 of 2 failed: RuntimeError: injected failure "
                                         "on rank 1")
    detail = json.loads((tmp_path / "r" / "demo" / "table1"
                         / f"{df.loc['raises', 'cell_id']}.json").read_text())
    assert "_inject_rank_failure" in detail["traceback"]  # the rank's own traceback
    # Recorded within a minute of the kill (not the 180-min process-group timeout).
    killed_at = float((tmp_path / "killed_at").read_text())
    recorded = datetime.fromisoformat(df.loc["killed", "finished_at"]).timestamp()
    assert recorded - killed_at < 60
    assert wall < 300


def test_root_cause_of_a_failed_job(tmp_path, monkeypatch):
    """Which rank's account the launcher records, decided by hand for each case."""
    from reid_bench.run.launch import jobfiles
    from reid_bench.run.launch.torchrun import _failure_of
    from reid_bench.table.plan import CellKey

    ref = {"row": "r", "dataset": "d", "seed": 0, "tier": "full", "split": 3, "variant": ""}
    monkeypatch.setenv(jobfiles.JOB_ENV, str(tmp_path))
    jobfiles.write_failure(1, 2, CellKey.from_dict(ref), "Traceback ...\nRuntimeError: boom on 1")
    t1 = json.loads((tmp_path / "rank1.json").read_text())["t"]
    # The follower failed first; rank 0's record (a broken connection) came after: follower.
    assert _failure_of(tmp_path, ref, {"t": t1 + 1}, "", 2) == (
        "rank 1 of 2 failed: RuntimeError: boom on 1", "Traceback ...\nRuntimeError: boom on 1")
    # Rank 0 recorded its own failure before the follower's error: keep rank 0's record.
    assert _failure_of(tmp_path, ref, {"t": t1 - 1}, "", 2) is None
    # Another cell's failure file does not count.
    assert _failure_of(tmp_path, {**ref, "split": 4}, {"t": t1 + 1}, "", 2) is None
    # A rank torchrun lists as killed by a signal is the root cause (it left no traceback).
    # (Rank 0 listed with SIGTERM: torchrun stopping it, not a cause.)
    summary = ("Failures:\n[1]:\n  rank      : 0 (local_rank: 0)\n  exitcode  : -15 (pid: 9)\n"
               "------------\nRoot Cause (first observed failure):\n[0]:\n"
               "  rank      : 1 (local_rank: 1)\n  exitcode  : -9 (pid: 10)\n"
               "  traceback : Signal 9 (SIGKILL) received by PID 10\n==========\n")
    msg, text = _failure_of(tmp_path, ref, {"t": t1 - 1}, summary, 2)
    assert msg.startswith("rank 1 of 2 died (exit code -9") and "SIGKILL" in text


def test_slurm_array_gets_one_task_per_split(tmp_path, plugin_env):
    from reid_bench.run.launch import options_to_dict
    from reid_bench.run.launch.slurm import SlurmConfig, submit
    from reid_bench.run.runner import RunOptions
    from reid_bench.spec import load_spec
    from reid_bench.table.plan import plan

    spec_path = write_table(tmp_path, ["tiny"])
    cells = plan(load_spec(spec_path))
    opts = options_to_dict(RunOptions(results_dir=tmp_path / "r"))
    jobs = submit(str(spec_path), cells, opts, SlurmConfig(), cluster="debug")
    refs = [j.submission().args[1] for j in jobs]  # not run: the debug executor is lazy
    assert [r["split"] for r in refs] == list(range(20))
    assert {(r["row"], r["dataset"], r["tier"]) for r in refs} == {("tiny", "cuhk", "full")}
