"""TensorBoard output of training histories (``run --tensorboard``, ``reid-bench curves
--to-tensorboard``), read back with TensorBoard's own reader; the one-line error without the
``[tb]`` extra."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from crashing import crashing_training
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from toyspec import register_plugin

from reid_bench import history
from reid_bench.cli import main
from reid_bench.engine.recipe import OptimRecipe
from reid_bench.engine.train import train_stage
from reid_bench.history import tensorboard as tb

register_plugin()
import rb_test_methods  # noqa: E402


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder), purge_orphaned_data=True)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _train(tmp: Path, tbdir: Path, crash_at_step: int | None = None) -> history.History:
    torch.manual_seed(0)
    model = rb_test_methods.TinyNet(5)
    loader, step = crashing_training(model, 64, (3, 16, 8), 5, crash_at_step=crash_at_step)
    h = history.History(tmp / "m.csv", every_steps=3, tensorboard=tbdir)
    with history.use(h):
        train_stage(model, loader, step, OptimRecipe(epochs=4, lr=0.1, batch_size=8),
                    stage="toy", checkpoint=tmp / "c.ckpt", checkpoint_every=1)
    return h


@pytest.mark.parametrize("crash_at_step", [None, 12, 19, 27])
def test_live_event_files_match_history_even_after_resume(tmp_path, crash_at_step):
    if crash_at_step is not None:
        with pytest.raises(RuntimeError, match="injected"):
            _train(tmp_path, tmp_path / "tb", crash_at_step)
    h = _train(tmp_path, tmp_path / "tb")
    got = _scalars(tmp_path / "tb" / "toy")
    for kind, tag in (("epoch", "train"), ("steps", "steps")):
        rows = [r for r in h.rows if r["kind"] == kind]
        for term in ("loss", "lr", "lr_group0", "img_per_s"):
            want = [(r["step"], pytest.approx(r[term], rel=1e-6)) for r in rows]
            assert got[f"{tag}/{term}"] == want, (tag, term)  # no duplicates past the resume


def test_curves_command_converts_saved_histories(tmp_path):
    res = tmp_path / "results"
    cells = res / "demo" / "table1"
    rows = [{"stage": "s", "kind": "epoch", "epoch": e, "step": 10 * e, "epochs": 3,
             "seconds": 1.0, "lr": 0.1, "loss": 3.0 - e} for e in (1, 2, 3)]
    rows.append({"stage": "s", "kind": "monitor", "epoch": 3, "step": 30, "epochs": 3,
                 "seconds": 2.0, "rank1": 40.0, "mAP": 20.0})
    art = res / "_artifacts" / "trained" / "abc"
    history.write_rows(art / history.FILE, rows)
    cells.mkdir(parents=True)
    (cells / "a__market__s0.json").write_text(json.dumps(
        {"history": rows[:3], "history_file": "_artifacts/trained/abc/metrics.csv"}))
    # a pointer out of the results folder is not followed: the cell JSON's rows are used
    outside = tmp_path / "outside.csv"
    history.write_rows(outside, rows + rows)
    (cells / "b__market__s0.json").write_text(json.dumps(
        {"history": rows[:2], "history_file": "../outside.csv"}))
    out = CliRunner().invoke(main, ["curves", str(res), "--to-tensorboard", str(tmp_path / "tb")])
    assert out.exit_code == 0, out.output
    assert "2 cell history(ies)" in out.output
    a = _scalars(tmp_path / "tb" / "demo" / "table1" / "a__market__s0" / "s")
    assert a["train/loss"] == [(10, 2.0), (20, 1.0), (30, 0.0)]
    assert a["monitor/rank1"] == [(30, 40.0)]  # from the full metrics.csv
    b = _scalars(tmp_path / "tb" / "demo" / "table1" / "b__market__s0" / "s")
    assert b["train/loss"] == [(10, 2.0), (20, 1.0)] and "monitor/rank1" not in b


@pytest.mark.parametrize("argv", [["run", "papers/fmn/table5.yaml", "--smoke", "--tensorboard",
                                   "TB"], ["curves", ".", "--to-tensorboard", "TB"]])
def test_without_tensorboard_one_line_error_names_the_extra(monkeypatch, tmp_path, argv):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard → ImportError
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    out = CliRunner().invoke(main, [a.replace("TB", str(tmp_path / "tb")) for a in argv])
    assert out.exit_code == 1
    msg = out.output.strip().splitlines()
    assert len(msg) == 1 and tb.EXTRA in msg[0], out.output
    assert not (tmp_path / "tb").exists()
