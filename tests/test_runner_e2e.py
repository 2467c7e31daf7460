"""End to end on the synthetic dataset: spec → runner → CSV, resume after a kill, not-run rows."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from toyspec import IDE_A, cli_cmd, plugin_env, tiny_spec, toy_spec, write_spec

from reid_bench.cli import main
from reid_bench.core.registry import METHODS
from reid_bench.data import load_dataset
from reid_bench.engine.embed import make_embedder
from reid_bench.eval import evaluate_cell
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec, resolved_recipe
from reid_bench.store import results
from reid_bench.table.plan import plan

SPEC = toy_spec("rows:\n" + IDE_A + """\
  - name: IDE B
    method: ide
    params: {backbone: resnet50, dropout: 0.25}
    published: {market: {rank1: 71.0, mAP: 51.0}}
  - name: Future method
    method: not_yet_registered
    published: {market: {rank1: 80.0, mAP: 60.0}}
  - name: Quoted
    runnable: false
    source: "[9]"
    published: {market: {rank1: 60.0, mAP: null}}
""", caption="tiny IDE table", smoke="""\
smoke:
  recipe:
    input: {height: 64, width: 32, resize: [72, 36], random_crop: true}
    backbone: {pretrained: none, width: 0.25}
    train: {epochs: 8, lr: 0.05, lr_steps: [7], batch_size: 32}
""")


@pytest.fixture()
def spec_path(tmp_path) -> Path:
    return write_spec(tmp_path, SPEC)


def _run(spec_path, results_dir, data_root, rows, **kw):
    spec = load_spec(spec_path)
    runner = Runner(spec, RunOptions(results_dir=results_dir, data_root=data_root, smoke=True,
                                     **kw))
    return runner, runner.run(plan(spec, rows=rows, smoke=True))


@pytest.mark.slow
def test_trained_far_above_untrained_with_provenance(spec_path, tmp_path, shared_data_root):
    runner, summary = _run(spec_path, tmp_path / "res", shared_data_root, ["IDE A"])
    assert summary.ok and len(summary.done) == 1
    df = results.read_results(runner.csv)
    row = df.iloc[0]
    assert row["status"] == "ok" and bool(row["smoke"]) and bool(row["synthetic"])
    assert row["dataset_name"] == "synthetic"
    for col in ("git_commit", "spec_hash", "config_hash", "dataset_fingerprint", "device",
                "torch", "torchvision", "timm", "started_at", "finished_at", "wall_s"):
        assert isinstance(row[col], str) and row[col] or isinstance(row[col], float), col
    assert row["torch"] == torch.__version__
    assert row["dataset_fingerprint"] == load_dataset("synthetic", shared_data_root).fingerprint
    # The same recipe, untrained, scored through the same evaluation path.
    spec = load_spec(spec_path)
    method = METHODS.get("ide")()
    values, _ = resolved_recipe(spec, spec.row("IDE A"), smoke=True)
    recipe = method.Recipe.model_validate(values)
    ds = load_dataset("synthetic", shared_data_root)
    torch.manual_seed(0)
    untrained = method.build(method.Params(), recipe, ds.num_train_pids)
    base = evaluate_cell("market", ds, make_embedder(untrained, untrained, recipe.input))
    assert row["rank1"] >= base.metrics["rank1"] + 20, (row["rank1"], base.metrics)
    assert row["mAP"] >= base.metrics["mAP"] + 15, (row["mAP"], base.metrics)


def test_unregistered_method_is_a_not_run_cell_and_exit_nonzero(spec_path, tmp_path,
                                                                 shared_data_root):
    res = CliRunner().invoke(main, ["run", str(spec_path), "--smoke", "--rows", "Future method",
                                    "--results-dir", str(tmp_path / "r"), "--data-root",
                                    str(shared_data_root)])
    assert res.exit_code == 1, res.output
    df = results.read_results(tmp_path / "r" / "demo" / "table1.csv")
    assert df.iloc[0]["status"] == "not_run"
    assert "unknown method 'not_yet_registered'" in df.iloc[0]["error"]
    assert "not_run" in res.output


def test_dry_run_plans_without_running(spec_path, tmp_path):
    res = CliRunner().invoke(main, ["run", str(spec_path), "--smoke", "--dry-run",
                                    "--results-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "3 cell(s)" in res.output and "IDE B" in res.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_kill_after_first_cell_then_resume_recomputes_nothing(tmp_path, shared_data_root):
    # Two test_tiny rows (a real training through the shared loop, in seconds); the second
    # sleeps at each step so that the kill lands while it trains.
    spec_path = tiny_spec(tmp_path, [{"name": "A"}, {"name": "B", "params": {"sleep": 0.1}}],
                          epochs=2)
    res_dir = tmp_path / "res"
    csv = res_dir / "demo" / "table1.csv"
    cmd = cli_cmd(spec_path, res_dir, shared_data_root)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=plugin_env())
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if csv.is_file() and len(results.read_results(csv)) >= 1:
                break
            if proc.poll() is not None:
                pytest.fail("runner exited before the first cell finished")
            time.sleep(0.2)
        else:
            pytest.fail("first cell did not finish in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = results.read_results(csv)
    assert len(first) == 1 and first.iloc[0]["row"] == "A"
    done_at = first.iloc[0]["finished_at"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=plugin_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "A × market (seed 0): already done" in out.stdout
    final = results.read_results(csv)
    assert sorted(final["row"]) == ["A", "B"]
    assert final.set_index("row").loc["A", "finished_at"] == done_at
    assert (final["status"] == "ok").all()


def test_a_model_reused_from_memory_keeps_its_training_provenance(tmp_path, shared_data_root):
    """Under --smoke both columns use the one synthetic stand-in, so the second cell reuses the
    model trained for the first without training: its row still names that model's training
    (trained_* columns, code fingerprint), not blanks."""
    from toyspec import register_plugin, tiny_recipe

    register_plugin()
    row = ("rows:\n  - name: a\n    method: test_tiny\n    published: {market: {rank1: 50.0, "
           "mAP: 30.0}, duke: {rank1: 50.0, mAP: 30.0}}\n")
    spec_path = write_spec(tmp_path, toy_spec(
        row, recipe=tiny_recipe(epochs=1), datasets=(
            "datasets:\n  market: {name: market1501, eval: {protocol: market}}\n"
            "  duke: {name: dukemtmc, eval: {protocol: market}}\n")))
    spec = load_spec(spec_path)
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                     smoke=True))
    summary = runner.run(plan(spec, smoke=True))
    assert summary.ok and len(summary.done) == 2
    df = results.read_results(runner.csv)
    assert df["train_hash"].nunique() == 1  # one training served both cells
    for col in ("trained_commit", "trained_at", "trained_device"):
        assert df[col].notna().all() and df[col].nunique() == 1, col
