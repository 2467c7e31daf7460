"""Fault injection: kills at named points and at random times, concurrent runners, non-finite
losses, out-of-memory, exact mid-stage resume and bit-identical reruns."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch.utils.data import TensorDataset

from reid_bench import results as R
from reid_bench.cli import main
from reid_bench.data.samplers import make_loader
from reid_bench.plan import plan
from reid_bench.recipe import OptimRecipe
from reid_bench.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.train import train_stage

PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))
import rb_test_methods  # noqa: E402  (registers test_tiny)


def spec_text(rows: list[dict]) -> str:
    body = ""
    for r in rows:
        params = ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}"
                           for k, v in r.get("params", {}).items())
        body += (f"  - name: {r['name']}\n    method: test_tiny\n    params: {{{params}}}\n"
                 f"    published: {{market: {{rank1: 50.0, mAP: 30.0}}}}\n")
    return textwrap.dedent("""\
        paper: {id: demo, title: Demo, authors: [A], venue: V, year: 2020}
        table: {id: table1, caption: reliability}
        metrics: [rank1, mAP]
        datasets:
          market: {name: market1501, eval: {protocol: market}}
        recipe:
          input:
            height: {value: 32, source: "test"}
            width: {value: 16, source: "test"}
            normalize: {value: none, source: "test"}
          backbone:
            pretrained: {value: none, source: "test"}
          train:
            epochs: {value: 3, source: "test"}
            lr: {value: 0.05, source: "test"}
            batch_size: {value: 64, source: "test"}
        rows:
        """) + body


def write_spec(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "papers" / "demo" / "table1.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(spec_text(rows))
    return p


def cli_cmd(spec: Path, results: Path, data_root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reid_bench", "run", str(spec), "--smoke", "--results-dir",
            str(results), "--data-root", str(data_root), "--checkpoint-every", "1", *extra]


def env(**kw) -> dict:
    e = dict(os.environ, REID_BENCH_PLUGINS="rb_test_methods", OMP_NUM_THREADS="1",
             PYTHONPATH=os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]))
    e.pop("REID_BENCH_FAULT", None)
    e.update(kw)
    return e


def assert_table_clean(csv: Path, rows: list[str]) -> None:
    df = R.read_results(csv)  # raises on duplicates, partial rows, bad statuses
    assert sorted(df["row"]) == sorted(rows)
    assert (df["status"] == "ok").all(), df[["row", "status", "error"]]
    assert not list(csv.parent.glob(".*.tmp"))


# ------------------------------------------------------------------------------ resume


def _train_tiny(ckpt: Path, crash_at_step: int | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = rb_test_methods.TinyNet(5)
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(64, 3, 16, 8, generator=g),
                         torch.randint(0, 5, (64,), generator=g))
    loader = make_loader(data, 8, shuffle=True, seed=0, drop_last=True)
    calls = {"n": 0}

    def step(batch):
        calls["n"] += 1
        if calls["n"] == crash_at_step:
            raise RuntimeError("injected crash")
        x, y = batch
        return F.cross_entropy(model(x), y), {}

    train_stage(model, loader, step, OptimRecipe(epochs=4, lr=0.1, batch_size=8),
                checkpoint=ckpt, checkpoint_every=1, log=lambda m: None)
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
                                     smoke=True, log=lambda m: None))
    summary = runner.run(plan(spec, smoke=True))
    df = R.read_results(runner.csv).set_index("row")
    assert df.loc["nan", "status"] == "diverged"
    assert "step 2" in df.loc["nan", "error"]
    assert df.loc["fine", "status"] == "ok"
    assert not summary.ok and summary.done == ["fine__market__s0__smoke"]


def test_oom_is_recorded_with_advice(tmp_path, shared_data_root):
    spec = load_spec(write_spec(tmp_path, [{"name": "oom", "params": {"oom": True}}]))
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                     smoke=True, log=lambda m: None))
    runner.run(plan(spec, smoke=True))
    err = R.read_results(runner.csv).iloc[0]["error"]
    assert "out of memory" in err and "lower the batch size" in err


@pytest.mark.parametrize("point", ["train_step:5", "evaluate", "json_before_rename",
                                   "csv_before_rename"])
def test_kill9_at_fault_point_then_rerun_finishes_exactly_once(tmp_path, shared_data_root,
                                                               point):
    rows = [{"name": "a"}, {"name": "b"}]
    spec = write_spec(tmp_path, rows)
    results = tmp_path / "r"
    first = subprocess.run(cli_cmd(spec, results, shared_data_root), env=env(
        REID_BENCH_FAULT=point), capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    csv = R.table_csv(results, "demo", "table1")
    if point == "csv_before_rename":
        assert not csv.exists() or R.read_results(csv).empty  # the torn write never landed
        assert list(csv.parent.glob(".*.tmp"))  # ...its temp file is what was left
    second = subprocess.run(cli_cmd(spec, results, shared_data_root), env=env(),
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert_table_clean(csv, ["a", "b"])


def test_kill9_at_random_times_then_rerun(tmp_path, shared_data_root):
    rows = [{"name": n, "params": {"sleep": 0.02}} for n in ("a", "b", "c")]
    spec = write_spec(tmp_path, rows)
    results = tmp_path / "r"
    rng = random.Random(1234)
    for _ in range(3):
        proc = subprocess.Popen(cli_cmd(spec, results, shared_data_root), env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 8.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        csv = R.table_csv(results, "demo", "table1")
        if csv.exists():
            R.read_results(csv)  # never corrupt, whatever the kill point
    done = subprocess.run(cli_cmd(spec, results, shared_data_root), env=env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_table_clean(R.table_csv(results, "demo", "table1"), ["a", "b", "c"])


def test_two_concurrent_runners_run_each_cell_once(tmp_path, shared_data_root):
    names = ["a", "b", "c", "d"]
    rows = [{"name": n, "params": {"sleep": 0.01, "marker": str(tmp_path / f"{n}.count")}}
            for n in names]
    spec = write_spec(tmp_path, rows)
    results = tmp_path / "r"
    procs = [subprocess.Popen(cli_cmd(spec, results, shared_data_root), env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert_table_clean(R.table_csv(results, "demo", "table1"), names)
    for n in names:
        assert (tmp_path / f"{n}.count").read_text().count("fit") == 1, n


def test_same_seed_same_cpu_bit_identical_metrics(tmp_path, shared_data_root):
    spec = load_spec(write_spec(tmp_path, [{"name": "a"}]))
    metrics = []
    for _ in range(2):
        runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                         smoke=True, force=True, deterministic=True,
                                         log=lambda m: None))
        runner.run(plan(spec, smoke=True))
        row = R.read_results(runner.csv).iloc[0]
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
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                     log=lambda m: None))
    runner.run(plan(spec))
    err = R.read_results(runner.csv).iloc[0]["error"]
    assert "unknown dataset 'market1502'" in err and "market1501" in err


def test_missing_dataset_folder_not_run_with_guidance(tmp_path):
    spec = load_spec(write_spec(tmp_path, [{"name": "a"}]))
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=tmp_path / "empty",
                                     log=lambda m: None))
    summary = runner.run(plan(spec))
    row = R.read_results(runner.csv).iloc[0]
    assert row["status"] == "not_run" and not summary.ok
    assert str(tmp_path / "empty") in row["error"] and "Obtain it from" in row["error"]
