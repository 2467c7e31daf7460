"""Training history (reid_bench.history): metrics.csv rows per epoch / per N steps, resumed
without duplicates, published with every trained artefact (nested stages too), carried by the
cell JSON; monitoring evaluations that leave the trained model untouched; TensorBoard event
files read back with TensorBoard's own reader; the bounded reader of untrusted files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from crashing import crashing_training
from toyspec import register_plugin, tiny_spec

from reid_bench import history
from reid_bench.core.errors import ResultsError
from reid_bench.engine.artifacts import ArtifactCache
from reid_bench.engine.recipe import OptimRecipe
from reid_bench.engine.train import train_stage
from reid_bench.engine.trained import get_or_train
from reid_bench.history import csvfile
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.table.plan import plan

register_plugin()
import rb_test_methods  # noqa: E402  (the test_tiny network)

EPOCHS, STEPS_PER_EPOCH = 4, 8  # crashing_training: 64 images, batches of 8
TIMING = ("seconds", "img_per_s")


def _train(path: Path, ckpt: Path, every_steps: int, crash_at_step: int | None = None,
           stage: str = "toy") -> history.History:
    torch.manual_seed(0)
    model = rb_test_methods.TinyNet(5)
    loader, step = crashing_training(model, 64, (3, 16, 8), 5, crash_at_step=crash_at_step)
    h = history.History(path, every_steps=every_steps)
    with history.use(h):
        train_stage(model, loader, step, OptimRecipe(epochs=EPOCHS, lr=0.1, batch_size=8,
                                                     lr_steps=[2]),
                    stage=stage, checkpoint=ckpt, checkpoint_every=1)
    return h


def _untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_history_rows_per_epoch_and_per_steps(tmp_path):
    h = _train(tmp_path / "m.csv", tmp_path / "c.ckpt", every_steps=3)
    rows = history.read_rows(tmp_path / "m.csv")
    assert _untimed(rows) == _untimed(h.rows)
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == list(range(1, EPOCHS + 1))
    assert [r["step"] for r in epochs] == [STEPS_PER_EPOCH * e for e in range(1, EPOCHS + 1)]
    assert [r["lr"] for r in epochs] == [0.1, 0.1, pytest.approx(0.01), pytest.approx(0.01)]
    assert all(r["lr_group0"] == r["lr"] and r["img_per_s"] > 0 and r["seconds"] > 0
               and math.isfinite(r["loss"]) and r["epochs"] == EPOCHS for r in epochs)
    steps = [r["step"] for r in rows if r["kind"] == "steps"]
    assert steps == list(range(3, EPOCHS * STEPS_PER_EPOCH + 1, 3))


@pytest.mark.parametrize("every_steps", [0, 3])
@pytest.mark.parametrize("crash_at_step", range(2, EPOCHS * STEPS_PER_EPOCH + 1, 5))
def test_resumed_history_equals_uninterrupted_without_duplicates(tmp_path, every_steps,
                                                                 crash_at_step):
    ref = _train(tmp_path / "a.csv", tmp_path / "a.ckpt", every_steps)
    with pytest.raises(RuntimeError, match="injected"):
        _train(tmp_path / "b.csv", tmp_path / "b.ckpt", every_steps, crash_at_step)
    crashed = history.read_rows(tmp_path / "b.csv")  # what the crash left: rows up to it
    assert all(r["step"] < crash_at_step for r in crashed)
    resumed = _train(tmp_path / "b.csv", tmp_path / "b.ckpt", every_steps)
    keys = [(r["stage"], r["kind"], r["step"]) for r in resumed.rows]
    assert len(keys) == len(set(keys)), "duplicated history rows after resume"
    assert _untimed(history.read_rows(tmp_path / "b.csv")) == _untimed(ref.rows)


def test_steps_rows_are_flushed_with_the_epoch_row_not_each_step(tmp_path, monkeypatch):
    monkeypatch.setattr(history.session, "FLUSH_SECONDS", 1e9)
    h = history.History(tmp_path / "m.csv")
    base = {"stage": "s", "epoch": 1, "epochs": 1, "loss": 1.0}
    h.add(base | {"kind": "steps", "step": 1})
    assert history.read_rows(tmp_path / "m.csv") == []
    h.add(base | {"kind": "epoch", "step": 2})
    assert [r["kind"] for r in history.read_rows(tmp_path / "m.csv")] == ["steps", "epoch"]
    h.add(base | {"kind": "steps", "step": 3})
    h.close()  # the end of the training writes what is pending
    assert len(history.read_rows(tmp_path / "m.csv")) == 3


def test_repeated_stage_name_in_one_training_keeps_both(tmp_path):
    h = history.History(tmp_path / "m.csv")
    with history.use(h):
        for _ in range(2):
            model = rb_test_methods.TinyNet(5)
            loader, step = crashing_training(model, 16, (3, 16, 8), 5)
            train_stage(model, loader, step, OptimRecipe(epochs=1, lr=0.1, batch_size=8),
                        stage="same")
    assert [r["stage"] for r in h.rows] == ["same", "same#2"]


def test_nested_stage_artefact_keeps_its_rows_and_a_reuse_imports_them(tmp_path):
    cache = ArtifactCache(tmp_path / "art")

    def outer(h: history.History) -> Path:
        model = rb_test_methods.TinyNet(5)

        def inner() -> torch.nn.Module:
            loader, step = crashing_training(model, 16, (3, 16, 8), 5)
            train_stage(model, loader, step, OptimRecipe(epochs=2, lr=0.1, batch_size=8),
                        stage="stage1")
            return model

        with history.use(h):
            _, folder, _ = get_or_train(cache, "stage1", {"k": 1}, inner,
                                        lambda: rb_test_methods.TinyNet(5))
            loader, step = crashing_training(model, 16, (3, 16, 8), 5)
            train_stage(model, loader, step, OptimRecipe(epochs=1, lr=0.1, batch_size=8),
                        stage="stage2")
        return folder

    first, second = history.History(tmp_path / "1.csv"), history.History(tmp_path / "2.csv")
    folder = outer(first)
    assert {r["stage"] for r in history.read_rows(folder / history.FILE)} == {"stage1"}
    assert outer(second) == folder  # stage 1 reused from the cache
    assert [r["stage"] for r in first.rows] == ["stage1", "stage1", "stage2"]
    assert _untimed(second.rows)[:2] == _untimed(first.rows)[:2]
    assert [r["stage"] for r in second.rows] == ["stage1", "stage1", "stage2"]


# ------------------------------------------------------------------------ through the runner


def _run(tmp_path: Path, data_root: Path, name: str, **opts) -> tuple[Runner, dict]:
    spec = load_spec(tiny_spec(tmp_path, [{"name": "a"}], epochs=3))
    runner = Runner(spec, RunOptions(results_dir=tmp_path / name, data_root=data_root,
                                     smoke=True, deterministic=True, **opts))
    assert runner.run(plan(spec, smoke=True)).ok
    cell = next(runner.cells_dir.glob("*.json"))
    return runner, json.loads(cell.read_text())


@pytest.mark.slow
def test_runner_publishes_history_and_cell_json_points_to_it(tmp_path, shared_data_root):
    runner, cell = _run(tmp_path, shared_data_root, "r", log_every_steps=1)
    hfile = runner.opts.results_dir / cell["history_file"]
    assert hfile.resolve().is_relative_to(runner.opts.results_dir.resolve())
    assert hfile.parent == Path(cell["trained_artifact"])
    rows = history.read_rows(hfile)
    assert {r["kind"] for r in rows} == {"epoch", "steps"}
    assert _untimed(cell["history"]) == _untimed([r for r in rows if r["kind"] == "epoch"])
    assert [r["epoch"] for r in cell["history"]] == [1, 2, 3]
    # the training's work folder (and its history) is gone once the cell finished ok
    assert not list(runner.cells_dir.glob(".work-*"))


@pytest.mark.slow
def test_monitoring_records_metrics_and_changes_nothing(tmp_path, shared_data_root):
    plain_runner, plain = _run(tmp_path, shared_data_root, "plain")
    mon_runner, mon = _run(tmp_path, shared_data_root, "mon", eval_every=1)
    assert mon["metrics"] == plain["metrics"]  # the final epoch stays the result, unchanged
    a = torch.load(Path(plain["trained_artifact"]) / "model.pt", weights_only=True)
    b = torch.load(Path(mon["trained_artifact"]) / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    train = [r for r in mon["history"] if r["kind"] == "epoch"]
    assert _untimed(train) == _untimed(plain["history"])
    monitor = [r for r in mon["history"] if r["kind"] == "monitor"]
    assert [r["epoch"] for r in monitor] == [1, 2, 3]
    assert all(0.0 <= r["rank1"] <= 100.0 and 0.0 <= r["mAP"] <= 100.0 for r in monitor)
    # the last monitoring evaluation is the same model the result evaluates
    assert monitor[-1]["rank1"] == pytest.approx(mon["metrics"]["rank1"])


# ------------------------------------------------------------------------ untrusted files


GOOD = "stage,kind,epoch,step,epochs,seconds,img_per_s,lr,loss\ns,epoch,1,8,4,1.5,10,0.1,2.3\n"
BAD = {
    "header": "stage,kind,step\ns,epoch,1\n",
    "column name": GOOD.replace("loss", "lo ss"),
    "repeated column": GOOD.replace("img_per_s", "lr"),
    "kind": GOOD.replace("s,epoch", "s,weird"),
    "number": GOOD.replace("2.3", "abc"),
    "count": GOOD.replace(",8,", ",8.5,"),
    "negative count": GOOD.replace(",8,", ",-8,"),
    "fields": GOOD + "s,epoch,2\n",
    "long field": GOOD.replace("2.3", "1" * 300),
    "no stage": GOOD.replace("s,epoch", ",epoch"),
    "too many columns": ",".join(csvfile.BASE + tuple(f"c{i}" for i in range(300))) + "\n",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_reader_refuses_what_it_would_not_write(tmp_path, case):
    p = tmp_path / "metrics.csv"
    p.write_text(BAD[case])
    with pytest.raises(ResultsError, match="metrics.csv"):
        history.read_rows(p)


def test_reader_bounds_size_and_rows(tmp_path, monkeypatch):
    p = tmp_path / "metrics.csv"
    p.write_text(GOOD + "s,epoch,2,16,4,1.5,10,0.1,2.2\n")
    assert len(history.read_rows(p)) == 2
    monkeypatch.setattr(csvfile, "MAX_ROWS", 1)
    with pytest.raises(ResultsError, match="more than 1 rows"):
        history.read_rows(p)
    monkeypatch.setattr(csvfile, "MAX_BYTES", 10)
    with pytest.raises(ResultsError, match="limit"):
        history.read_rows(p)


def test_written_rows_read_back_equal():
    rows = [{"stage": "a", "kind": "epoch", "epoch": 1, "step": 3, "epochs": 2, "seconds": 0.5,
             "lr": 0.1, "lr_group0": 0.1, "lr_group1": 0.01, "loss": 1 / 3, "acc": 0.25},
            {"stage": "a", "kind": "monitor", "epoch": 1, "step": 3, "epochs": 2,
             "seconds": 2.0, "rank1": 12.5, "mAP": 7.25}]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        history.write_rows(Path(d) / "m.csv", rows)
        back = history.read_rows(Path(d) / "m.csv")
    assert back[0] == pytest.approx(rows[0]) and back[1] == rows[1]


class _Frozen(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.frozen = torch.nn.BatchNorm1d(3).eval()  # e.g. FMN's GRN during stage 2
        self.head = torch.nn.Linear(3, 2)


@pytest.mark.parametrize("draws", [0, 1, 5])
def test_monitor_restores_every_module_mode_and_every_rng(draws):
    import random

    import numpy as np

    model = _Frozen().train()
    model.frozen.eval()

    def evaluate(m):
        m.eval()
        for _ in range(draws):  # an evaluation drawing from every generator
            torch.rand(3), random.random(), np.random.rand()
        torch.manual_seed(123)
        return {"rank1": 1.0}

    h = history.History(None, monitor=history.Monitor(1, evaluate, lambda m: True))
    log = history.session.StageLog(h, "s", 4, 0)
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    log.epoch(0, 1, {"loss": 1.0, "lr": 0.1, "seconds": 1.0}, opt, model)
    assert torch.equal(torch.rand(4), expected)
    assert model.training and model.head.training and not model.frozen.training
    assert [r["kind"] for r in h.rows] == ["epoch", "monitor"]


@pytest.mark.slow
def test_kill9_in_epoch_3_then_rerun_history_has_no_duplicates(tmp_path, shared_data_root):
    import signal
    import subprocess

    from toyspec import cli_cmd, plugin_env

    spec = tiny_spec(tmp_path, [{"name": "a"}], epochs=4)
    extra = ("--log-every-steps", "1", "--quiet")

    def metrics(out: Path) -> list[dict]:
        (f,) = (out / "_artifacts" / "trained").glob("*/metrics.csv")
        return history.read_rows(f)

    ref = subprocess.run(cli_cmd(spec, tmp_path / "ref", shared_data_root, *extra),
                         env=plugin_env(), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    want = metrics(tmp_path / "ref")
    per_epoch = next(r["step"] for r in want if r["kind"] == "epoch")
    kill_at = 2 * per_epoch + max(1, per_epoch // 2)  # inside epoch 3 (checkpoint: epoch 2)
    out = tmp_path / "r"
    first = subprocess.run(cli_cmd(spec, out, shared_data_root, *extra),
                           env=plugin_env(REID_BENCH_FAULT=f"train_step:{kill_at}"),
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stderr
    (work,) = (out / "demo" / "table1").glob(".work-*/metrics-*.csv")
    left = history.read_rows(work)
    # the epoch-2 row (the checkpoint's) at least; steps rows are flushed every 30 s
    assert 2 * per_epoch <= max(r["step"] for r in left) < kill_at
    second = subprocess.run(cli_cmd(spec, out, shared_data_root, *extra), env=plugin_env(),
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    got = metrics(out)
    keys = [(r["stage"], r["kind"], r["step"]) for r in got]
    assert len(keys) == len(set(keys))
    assert _untimed(got) == _untimed(want)
