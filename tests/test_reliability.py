"""Fault injection: kills at named points and at random times, concurrent runners, non-finite
losses, out-of-memory, exact mid-stage resume and bit-identical reruns."""

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from crashing import crashing_training
from toyspec import cli_cmd, register_plugin, tiny_spec
from toyspec import plugin_env as env

from reid_bench.cli import main
from reid_bench.engine.recipe import OptimRecipe
from reid_bench.engine.train import train_stage
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.plan import plan

register_plugin()
import rb_test_methods  # noqa: E402  (the test_tiny network)


def write_spec(tmp_path: Path, rows: list[dict]) -> Path:
    return tiny_spec(tmp_path, rows)


def assert_table_clean(csv: Path, rows: list[str]) -> None:
    df = results.read_results(csv)  # raises on duplicates, partial rows, bad statuses
    assert sorted(df["row"]) == sorted(rows)
    assert (df["status"] == "ok").all(), df[["row", "status", "error"]]
    assert not list(csv.parent.glob(".*.tmp"))


# ------------------------------------------------------------------------------ resume


def _train_tiny(ckpt: Path, crash_at_step: int | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = rb_test_methods.TinyNet(5)
    loader, step = crashing_training(model, 64, (3, 16, 8), 5, crash_at_step=crash_at_step)

    train_stage(model, loader, step, OptimRecipe(epochs=4, lr=0.1, batch_size=8),
                checkpoint=ckpt, checkpoint_every=1)
    return model


def test_resume_mid_stage_is_bit_identical_to_uninterrupted(tmp_path):
    ref = _train_tiny(tmp_path / "a.ckpt")
    with pytest.raises(RuntimeError, match="injected"):
        _train_tiny(tmp_path / "b.ckpt", crash_at_step=8 * 2 + 3)  # mid epoch 3
    assert (tmp_path / "b.ckpt").is_file()  # checkpoint of epoch 2 survived the crash
    resumed = _train_tiny(tmp_path / "b.ckpt")
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not (tmp_path / "b.ckpt").exists()  # removed once the stage completed


# ------------------------------------------------------------------------------ faults


def test_nan_loss_diverges_with_step_and_run_continues(tmp_path, shared_data_root):
    spec = load_spec(write_spec(tmp_path, [{"name": "nan", "params": {"nan_at_step": 2}},
                                           {"name": "fine"}]))
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                     smoke=True))
    summary = runner.run(plan(spec, smoke=True))
    df = results.read_results(runner.csv).set_index("row")
    assert df.loc["nan", "status"] == "diverged"
    assert "step 2" in df.loc["nan", "error"]
    assert df.loc["fine", "status"] == "ok"
    assert not summary.ok and summary.done == ["fine__market__s0__smoke"]


def test_oom_is_recorded_with_advice(tmp_path, shared_data_root):
    spec = load_spec(write_spec(tmp_path, [{"name": "oom", "params": {"oom": True}}]))
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                     smoke=True))
    runner.run(plan(spec, smoke=True))
    err = results.read_results(runner.csv).iloc[0]["error"]
    assert "out of memory" in err and "lower the batch size" in err


@pytest.mark.slow
@pytest.mark.parametrize("point", ["train_step:5", "evaluate", "json_before_rename",
                                   "csv_before_rename"])
def test_kill9_at_fault_point_then_rerun_finishes_exactly_once(tmp_path, shared_data_root,
                                                               point):
    rows = [{"name": "a"}, {"name": "b"}]
    spec = write_spec(tmp_path, rows)
    out = tmp_path / "r"
    first = subprocess.run(cli_cmd(spec, out, shared_data_root), env=env(
        REID_BENCH_FAULT=point), capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    csv = results.table_csv(out, "demo", "table1")
    if point == "csv_before_rename":
        assert not csv.exists() or results.read_results(csv).empty  # the torn write never landed
        assert list(csv.parent.glob(".*.tmp"))  # ...its temp file is what was left
    second = subprocess.run(cli_cmd(spec, out, shared_data_root), env=env(),
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert_table_clean(csv, ["a", "b"])


def _marks(markers: list[Path], pid: int) -> tuple[int, int]:
    """(total steps of its fit, steps done so far) that process ``pid`` wrote to the
    ``test_tiny`` rows' markers (0, 0 before its first fit). A line being written may be cut."""
    total = done = 0
    for m in markers:
        for ln in (m.read_text().splitlines() if m.exists() else []):
            kind, who, *rest = ln.split() + ["", ""]
            if who == str(pid):
                total = int(rest[0]) if kind == "fit" and rest[0].isdigit() else total
                done += kind == "step"
    return total, done


def _kill_mid_training(cmd: list[str], out: Path, markers: list[Path], rng) -> bool:
    """Run ``cmd``; once a checkpoint of this run is on disk, SIGKILL it at a random step of the
    next epoch (a checkpoint is saved only with an epoch left, so the kill interrupts that
    cell's training). False if the run ended first."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    started, deadline, at = time.time(), time.monotonic() + 120, None
    while proc.poll() is None and time.monotonic() < deadline:
        if at is None and any(f.stat().st_mtime >= started for f in out.rglob("*.ckpt")):
            total, done = _marks(markers, proc.pid)  # total = 2 epochs × steps per epoch
            at = done + rng.randrange(max(1, total // 2))
        if at is not None and _marks(markers, proc.pid)[1] >= at:
            break
        time.sleep(0.005)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return alive


@pytest.mark.slow
def test_kill9_at_random_times_then_rerun(tmp_path, shared_data_root):
    """SIGKILL at a random step of a cell's training once its first checkpoint is on disk
    (never during start-up, data loading or ``import torch``); the re-run resumes the killed
    cell from its checkpoint (it trains fewer steps than a whole fit), runs the other row
    whole, and the table ends complete, each row once, never corrupt on the way. (One kill:
    each interpreter start-up costs seconds.)"""
    names = ("a", "b")
    markers = [tmp_path / f"{n}.steps" for n in names]
    rows = [{"name": n, "params": {"sleep": 0.02, "marker": str(m)}}
            for n, m in zip(names, markers, strict=True)]
    out = tmp_path / "r"
    cmd = cli_cmd(tiny_spec(tmp_path, rows, epochs=2), out, shared_data_root)
    csv = results.table_csv(out, "demo", "table1")
    rng = random.Random(1234)
    assert _kill_mid_training(cmd, out, markers, rng)
    if csv.exists():
        results.read_results(csv)  # never corrupt, whatever the kill point
    done = CliRunner().invoke(main, cmd[3:])  # in this process: one interpreter start-up less
    assert done.exit_code == 0, done.output
    assert_table_clean(csv, list(names))
    resumed = 0
    for n, m in zip(names, markers, strict=True):
        fits = [ln.split() for ln in m.read_text().splitlines() if ln.startswith("fit ")]
        total, finisher = int(fits[0][2]), int(fits[-1][1])  # the process that completed it
        by_finisher = _marks([m], finisher)[1]
        if len(fits) > 1:  # killed mid-training: resumed from a checkpoint, not from scratch
            assert by_finisher < total, (n, by_finisher, total)
            resumed += 1
        else:
            assert by_finisher == total, (n, by_finisher, total)
    assert resumed == 1


@pytest.mark.slow
def test_two_concurrent_runners_run_each_cell_once(tmp_path, shared_data_root):
    names = ["a", "b", "c", "d"]
    rows = [{"name": n, "params": {"sleep": 0.01, "marker": str(tmp_path / f"{n}.count")}}
            for n in names]
    spec = write_spec(tmp_path, rows)
    out = tmp_path / "r"
    procs = [subprocess.Popen(cli_cmd(spec, out, shared_data_root), env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert_table_clean(results.table_csv(out, "demo", "table1"), names)
    for n in names:
        assert (tmp_path / f"{n}.count").read_text().count("fit") == 1, n


def test_same_seed_same_cpu_bit_identical_metrics(tmp_path, shared_data_root):
    spec = load_spec(write_spec(tmp_path, [{"name": "a"}]))
    metrics = []
    for _ in range(2):
        runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                         smoke=True, force=True, deterministic=True))
        runner.run(plan(spec, smoke=True))
        row = results.read_results(runner.csv).iloc[0]
        metrics.append((row["rank1"], row["rank5"], row["mAP"], row["config_hash"]))
    assert metrics[0] == metrics[1]


# ------------------------------------------------------------------------------ bad input


def test_malformed_yaml_exits_nonzero_naming_file_and_line(tmp_path):
    p = tmp_path / "papers" / "demo" / "table1.yaml"
    p.parent.mkdir(parents=True)
    p.write_text("paper: {id: demo\nrows: [\n")
    res = CliRunner().invoke(main, ["run", str(p), "--smoke"])
    assert res.exit_code == 2
    assert f"{p}:" in res.output and "malformed YAML" in res.output


def test_unknown_dataset_lists_valid(tmp_path, shared_data_root):
    p = write_spec(tmp_path, [{"name": "a"}])
    p.write_text(p.read_text().replace("name: market1501", "name: market1502"))
    spec = load_spec(p)
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root))
    runner.run(plan(spec))
    err = results.read_results(runner.csv).iloc[0]["error"]
    assert "unknown dataset 'market1502'" in err and "market1501" in err


def test_missing_dataset_folder_not_run_with_guidance(tmp_path):
    spec = load_spec(write_spec(tmp_path, [{"name": "a"}]))
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=tmp_path / "empty"))
    summary = runner.run(plan(spec))
    row = results.read_results(runner.csv).iloc[0]
    assert row["status"] == "not_run" and not summary.ok
    assert str(tmp_path / "empty") in row["error"] and "Obtain it from" in row["error"]
