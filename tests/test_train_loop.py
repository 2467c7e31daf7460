"""The training loop's run-wide switches: a checkpoint by elapsed time (not only every N
epochs), and a progress bar per epoch only on a terminal, with one log line per epoch always."""

from __future__ import annotations

import logging
import re
import sys

import pytest
import torch
from crashing import crashing_training

from reid_bench.engine.recipe import OptimRecipe
from reid_bench.engine.train import LoopSettings, train_stage, use_loop_settings


def _run(ckpt, *, crash_at_step=None, every=0, minutes=None, settings=None, sleep=0.0):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    loader, step = crashing_training(model, 32, (3, 2, 2), 3, crash_at_step=crash_at_step,
                                     sleep=sleep)

    with use_loop_settings(settings or LoopSettings()):
        train_stage(model, loader, step, OptimRecipe(epochs=5, lr=0.1, batch_size=8),
                    checkpoint=ckpt, checkpoint_every=every, checkpoint_minutes=minutes)


def test_checkpoint_by_elapsed_time_survives_a_crash_before_n_epochs(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="reid_bench")
    # Every 5 epochs alone would save nothing before the crash in epoch 3 ...
    with pytest.raises(RuntimeError, match="injected"):
        _run(tmp_path / "a.ckpt", crash_at_step=4 * 2 + 2, every=5)
    assert not (tmp_path / "a.ckpt").exists()
    # ... a time budget already spent at each epoch end saves after every epoch.
    with pytest.raises(RuntimeError, match="injected"):
        _run(tmp_path / "b.ckpt", crash_at_step=4 * 2 + 2, every=5, minutes=1e-9)
    state = torch.load(tmp_path / "b.ckpt", weights_only=True)
    assert state["epoch"] == 2
    caplog.clear()
    _run(tmp_path / "b.ckpt", every=5, minutes=1e-9)
    assert any("resumed from b.ckpt at epoch 2" in m for m in caplog.messages)
    assert not (tmp_path / "b.ckpt").exists()  # removed once the stage completed


def test_checkpoint_minutes_come_from_the_runner_settings(tmp_path):
    with pytest.raises(RuntimeError, match="injected"):
        _run(tmp_path / "c.ckpt", crash_at_step=4 * 2 + 2,
             settings=LoopSettings(checkpoint_minutes=1e-9))
    assert torch.load(tmp_path / "c.ckpt", weights_only=True)["epoch"] == 2
    # A budget not yet spent saves nothing.
    with pytest.raises(RuntimeError, match="injected"):
        _run(tmp_path / "d.ckpt", crash_at_step=4 * 2 + 2,
             settings=LoopSettings(checkpoint_minutes=60))
    assert not (tmp_path / "d.ckpt").exists()


def _epoch_lines(caplog) -> list[str]:
    return [m for m in caplog.messages if m.startswith("[train] epoch")]


def test_not_a_terminal_one_log_line_per_epoch_and_no_bar(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="reid_bench")
    _run(None)
    err = capsys.readouterr().err
    assert "batch/s" not in err and "it/s" not in err and "%|" not in err
    lines = _epoch_lines(caplog)
    assert [ln.split()[2] for ln in lines] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    # each line: epoch, mean loss, seconds
    assert all(re.search(r"loss=\d+\.\d{4} .*\(\d+\.\ds\)$", ln) for ln in lines), lines


def test_progress_bar_per_epoch_on_a_terminal_not_when_quiet(tmp_path, capsys, monkeypatch,
                                                             caplog):
    caplog.set_level(logging.INFO, logger="reid_bench")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _run(None, sleep=0.03)
    err = capsys.readouterr().err
    # total steps, rate, ETA and the running loss of every epoch's bar
    assert "[train] epoch 5/5" in err and "/4 [" in err and "batch/s" in err
    assert "<" in err and re.search(r"loss=\d+\.\d{4}", err)
    assert len(_epoch_lines(caplog)) == 5  # log lines stay
    caplog.clear()
    _run(None, settings=LoopSettings(progress=False))  # --quiet (RunOptions.quiet)
    assert "batch" not in capsys.readouterr().err
    assert len(_epoch_lines(caplog)) == 5
