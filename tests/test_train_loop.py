"""The training loop's run-wide switches: a checkpoint by elapsed time (not only every N
epochs), and a progress bar within epochs only on a terminal."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from reid_bench.data.samplers import make_loader
from reid_bench.recipe import OptimRecipe
from reid_bench.train import LoopSettings, train_stage, use_loop_settings


def _run(ckpt, *, crash_at_step=None, every=0, minutes=None, settings=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(32, 3, 2, 2, generator=g),
                         torch.randint(0, 3, (32,), generator=g))
    loader = make_loader(data, 8, shuffle=True, seed=0, drop_last=True)
    calls = {"n": 0}
    logs: list[str] = []

    def step(batch):
        calls["n"] += 1
        if calls["n"] == crash_at_step:
            raise RuntimeError("injected crash")
        x, y = batch
        return F.cross_entropy(model(x), y), {}

    with use_loop_settings(settings or LoopSettings()):
        train_stage(model, loader, step, OptimRecipe(epochs=5, lr=0.1, batch_size=8),
                    checkpoint=ckpt, checkpoint_every=every, checkpoint_minutes=minutes,
                    log=logs.append)
    return logs


def test_checkpoint_by_elapsed_time_survives_a_crash_before_n_epochs(tmp_path):
    # Every 5 epochs alone would save nothing before the crash in epoch 3 ...
    with pytest.raises(RuntimeError, match="injected"):
        _run(tmp_path / "a.ckpt", crash_at_step=4 * 2 + 2, every=5)
    assert not (tmp_path / "a.ckpt").exists()
    # ... a time budget already spent at each epoch end saves after every epoch.
    with pytest.raises(RuntimeError, match="injected"):
        _run(tmp_path / "b.ckpt", crash_at_step=4 * 2 + 2, every=5, minutes=1e-9)
    state = torch.load(tmp_path / "b.ckpt", weights_only=False)
    assert state["epoch"] == 2
    logs = _run(tmp_path / "b.ckpt", every=5, minutes=1e-9)
    assert any("resumed from b.ckpt at epoch 2" in m for m in logs)
    assert not (tmp_path / "b.ckpt").exists()  # removed once the stage completed


def test_checkpoint_minutes_come_from_the_runner_settings(tmp_path):
    with pytest.raises(RuntimeError, match="injected"):
        _run(tmp_path / "c.ckpt", crash_at_step=4 * 2 + 2,
             settings=LoopSettings(checkpoint_minutes=1e-9))
    assert torch.load(tmp_path / "c.ckpt", weights_only=False)["epoch"] == 2
    # A budget not yet spent saves nothing.
    with pytest.raises(RuntimeError, match="injected"):
        _run(tmp_path / "d.ckpt", crash_at_step=4 * 2 + 2,
             settings=LoopSettings(checkpoint_minutes=60))
    assert not (tmp_path / "d.ckpt").exists()


def test_progress_bar_only_on_a_terminal_and_not_when_quiet(tmp_path, capsys, monkeypatch):
    _run(None)
    assert "batch/s" not in capsys.readouterr().err  # not a TTY: only the per-epoch lines
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    logs = _run(None)
    err = capsys.readouterr().err
    assert "[train] epoch 5/5" in err and "/4 [" in err and "batch/s" in err  # total, rate
    assert len([m for m in logs if m.startswith("[train] epoch")]) == 5  # log lines stay
    _run(None, settings=LoopSettings(progress=False))
    assert "batch" not in capsys.readouterr().err
