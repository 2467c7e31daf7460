"""Preemption, timeout and Ctrl-C: a signal stops the training at the next step boundary with
its checkpoint saved, and the resumed training loses at most one step (issue 27 item 4, issue
28's Ctrl-C)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from crashing import crashing_training
from toyspec import cli_cmd, register_plugin, tiny_spec
from toyspec import plugin_env as env

from reid_bench.core import preempt
from reid_bench.engine import checkpoint as ckpt
from reid_bench.engine.recipe import OptimRecipe
from reid_bench.engine.train import train_stage
from reid_bench.store import results

register_plugin()
import rb_test_methods  # noqa: E402  (the test_tiny network)

EPOCHS, STEPS = 3, 8  # 64 images, batches of 8


def _train(path: Path | None, *, signal_at: int | None = None, sig=signal.SIGTERM,
           calls: list | None = None, epochs: int = EPOCHS) -> torch.nn.Module:
    """The tiny toy training of ``epochs``; ``signal_at``: send ``sig`` to this process during
    that step (1-based count of this run's steps); ``calls`` collects one entry per step run."""
    torch.manual_seed(0)
    model = rb_test_methods.TinyNet(5)
    loader, step = crashing_training(model, 64, (3, 16, 8), 5)
    n = {"calls": 0}

    def signalling_step(batch):
        n["calls"] += 1
        if calls is not None:
            calls.append(n["calls"])
        if n["calls"] == signal_at:
            os.kill(os.getpid(), sig)  # arrives mid-step, as a real one would
        return step(batch)

    train_stage(model, loader, signalling_step, OptimRecipe(epochs=epochs, lr=0.1, batch_size=8),
                checkpoint=path, checkpoint_every=0)
    return model


_AT = sorted(random.Random(27).sample(range(1, EPOCHS * STEPS), 4)) + [STEPS, EPOCHS * STEPS]


@pytest.mark.parametrize("sig", preempt.SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("at", _AT)
def test_signal_stops_at_the_step_boundary_and_resume_loses_nothing(tmp_path, sig, at):
    """Any stop signal at any step (random ones, an epoch's last, the stage's last): the stage
    stops after that step with a checkpoint (checkpoint_every=0: the signal alone saves it),
    the resumed stage runs only the steps not yet run, and the weights are bit-identical to an
    uninterrupted training (CPU)."""
    ref = _train(None)
    path = tmp_path / "w" / "tiny.ckpt"
    first, second = [], []
    with pytest.raises(preempt.Preempted) as info:
        _train(path, signal_at=at, sig=sig, calls=first)
    assert info.value.step == at and info.value.checkpoint == path
    assert sig.name in str(info.value) and str(path) in str(info.value)
    assert len(first) == at and path.is_file() and ckpt.sidecar(path).is_file()
    assert signal.getsignal(sig) is not None and preempt.requested() is None  # handler restored
    resumed = _train(path, calls=second)
    assert len(first) + len(second) == EPOCHS * STEPS  # steps lost: 0 (at most 1 allowed)
    for (k, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not path.exists() and not ckpt.sidecar(path).exists()


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    path = tmp_path / "tiny.ckpt"
    torch.manual_seed(0)
    model = rb_test_methods.TinyNet(5)
    loader, step = crashing_training(model, 64, (3, 16, 8), 5)

    def twice(batch):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        return step(batch)

    with pytest.raises(KeyboardInterrupt):
        train_stage(model, loader, twice, OptimRecipe(epochs=1, lr=0.1, batch_size=8),
                    checkpoint=path)
    assert not path.exists()  # nothing saved: the user asked to stop now
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_signal_after_the_last_step_reaches_the_previous_handler(tmp_path):
    """A request the loop could not serve (the stage ended first) is never swallowed."""
    got = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    try:
        calls = []
        _train(None, signal_at=0, calls=calls)  # no signal: control
        assert got == []
        # No checkpoint path: the stage has none to save, so it says so and stops all the same.
        with pytest.raises(preempt.Preempted, match="keeps no checkpoint"):
            _train(None, signal_at=STEPS, sig=signal.SIGUSR1, epochs=1)
        assert got == []  # served by the loop, not passed on
    finally:
        signal.signal(signal.SIGUSR1, old)


# ------------------------------------------------------------------------------ real SIGTERM


def _steps(marker: Path, pid: int) -> int:
    return sum(1 for ln in marker.read_text().splitlines() if ln == f"step {pid}") \
        if marker.exists() else 0


@pytest.mark.slow
def test_real_sigterm_at_a_random_step_loses_at_most_one_step(tmp_path, shared_data_root):
    """`reid-bench run` in a subprocess gets a real SIGTERM at a random step of its training
    (no epoch checkpoint yet: --checkpoint-every 5 of a 2-epoch recipe); it exits with
    EXIT_PREEMPTED saying how to resume, the cell has no row, and the re-run finishes the
    cell running only the steps not yet run (+ at most one)."""
    marker = tmp_path / "a.steps"
    spec = tiny_spec(tmp_path, [{"name": "a", "params": {"sleep": 0.02, "marker": str(marker)}}],
                     epochs=2)
    out = tmp_path / "r"
    cmd = cli_cmd(spec, out, shared_data_root)
    cmd[cmd.index("--checkpoint-every") + 1] = "5"
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    total = int(marker.read_text().split()[2])  # "fit <pid> <total steps>"
    at = random.Random(time.time_ns()).randrange(1, total - 1)
    while _steps(marker, proc.pid) < at and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == preempt.EXIT_PREEMPTED, output
    done_before = _steps(marker, proc.pid)
    assert "SIGTERM" in output and "resume" in output.lower() and "reid-bench run" in output
    csv = results.table_csv(out, "demo", "table1")
    assert not csv.exists() or results.read_results(csv).empty
    second = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    pids = [int(ln.split()[1]) for ln in marker.read_text().splitlines() if ln.startswith("fit")]
    done_after = _steps(marker, pids[-1])
    lost = done_before + done_after - total
    print(f"SIGTERM after step {at}/{total}: {done_before} steps before, {done_after} after, "
          f"steps lost: {lost}")
    assert 0 <= lost <= 1, (at, done_before, done_after, total)
    assert (results.read_results(csv)["status"] == "ok").all()


# ------------------------------------------------------------------------------ Slurm requeue


def test_slurm_task_is_checkpointable_and_requeues_the_same_cell(tmp_path, shared_data_root):
    """The array task's callable under submitit: its preemption signal (SIGUSR2) mid-training
    saves at the step boundary, then submitit's handler (here a stand-in recording the call and
    exiting like submitit's local requeue) requeues; ``checkpoint`` resubmits the same cell
    with the same arguments, and the requeued task finishes it losing at most one step."""
    import threading

    submitit = pytest.importorskip("submitit")
    from reid_bench.run.launch import options_to_dict
    from reid_bench.run.launch.slurm import CellJob
    from reid_bench.run.runner import RunOptions
    from reid_bench.spec import load_spec
    from reid_bench.table.plan import plan

    marker = tmp_path / "a.steps"
    path = tiny_spec(tmp_path, [{"name": "a", "params": {"sleep": 0.01, "marker": str(marker)}}],
                     epochs=2)
    spec = load_spec(path)
    ref = plan(spec, smoke=True)[0].key.as_dict()
    opts = options_to_dict(RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                      smoke=True, checkpoint_every=0, quiet=True))
    job = CellJob()
    assert isinstance(job, submitit.helpers.Checkpointable)
    again = job.checkpoint(str(path), ref, opts, 1)
    assert again.function is job and again.args == (str(path), ref, opts, 1)

    calls = []

    def submitit_handler(signum, frame):  # submitit: checkpoint(), requeue, exit
        calls.append(signum)
        raise SystemExit(144)

    def send_when(steps: int) -> None:
        while _steps(marker, os.getpid()) < steps:
            time.sleep(0.002)
        os.kill(os.getpid(), signal.SIGUSR2)

    from reid_bench.core import console

    # The task configures the console unless one is (launch.worker): ours, restored after.
    restore = console.configure(lambda msg: None, quiet=True)
    old = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        t = threading.Thread(target=send_when, args=(5,), daemon=True)
        t.start()
        with pytest.raises(SystemExit) as info:
            job(str(path), ref, opts, 1)
        t.join()
        assert info.value.code == 144 and calls == [signal.SIGUSR2]
        done_before = _steps(marker, os.getpid())
        assert list((tmp_path / "r").rglob("tiny.ckpt"))  # saved before the requeue
        marker.write_text(marker.read_text().replace(f"step {os.getpid()}", "step before"))
        out = job(str(path), ref, opts, 1)  # the requeued task
    finally:
        signal.signal(signal.SIGUSR2, old)
        restore()
    assert out["ok"], out
    total = int(marker.read_text().split()[2])
    lost = done_before + _steps(marker, os.getpid()) - total
    assert 0 <= lost <= 1, (done_before, total)


def test_a_forked_loader_worker_leaves_the_stop_to_the_training_process():
    """Workers forked inside a stage inherit the handler; a signal to them (Ctrl-C reaches the
    whole process group, Slurm signals every process) neither stops them nor logs twice."""
    with preempt.catching():
        pid = os.fork()
        if pid == 0:  # the "worker"
            os.kill(os.getpid(), signal.SIGTERM)
            os._exit(0 if preempt.requested() is None else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert preempt.requested() is None
