"""The training loop every method's stages share, driven by plain arguments.

A method builds its model, loader and a ``step`` function (batch → loss) and calls
``train_stage``; the loop owns what every stage needs the same way: the optimiser from the
recipe, the per-epoch learning rate, epoch-aware samplers, the non-finite-loss check and atomic
mid-stage checkpoints that a crashed run resumes from.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core import preempt
from ..core.console import progress
from ..core.errors import DivergedError
from ..core.faults import fault_point
from ..core.scoped import Scoped
from ..history import stage_log
from . import checkpoint as ckpt
from .checkpoint_identity import current_identity
from .distributed import world_size
from .recipe import GradClip, OptimRecipe

log = logging.getLogger(__name__)

StepFn = Callable[[Any], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class LoopSettings:
    """Run-wide switches of the loop that no recipe sets: also checkpoint at the end of an epoch
    once ``checkpoint_minutes`` passed since the last save (0: only every N epochs), and a
    progress bar per epoch with ETA and running loss (``progress``; drawn only when stderr is
    a terminal, ``console.bars_enabled``)."""

    checkpoint_minutes: float = 0.0
    progress: bool = True


_LOOP: Scoped[LoopSettings | None] = Scoped("loop", None)


@contextlib.contextmanager
def use_loop_settings(settings: LoopSettings):
    """Apply ``settings`` to every ``train_stage`` called inside (the runner sets them around a
    method's ``fit``, so methods need not pass them on)."""
    with _LOOP.use(settings):
        yield


def build_optimizer(groups: Sequence[tuple[Iterable[nn.Parameter], float]],
                    optim: OptimRecipe) -> torch.optim.Optimizer:
    """Optimiser of ``optim`` over parameter ``groups`` = [(params, lr multiplier), ...]."""
    pg = [{"params": [p for p in ps if p.requires_grad], "lr_mult": mult} for ps, mult in groups]
    pg = [g for g in pg if g["params"]]
    if not pg:
        raise ValueError("no trainable parameters in this stage")
    for g in pg:
        g["lr"] = optim.lr * g["lr_mult"]
    if optim.optimizer == "sgd":
        return torch.optim.SGD(pg, lr=optim.lr, momentum=optim.momentum,
                               weight_decay=optim.weight_decay, nesterov=optim.nesterov)
    return torch.optim.Adam(pg, lr=optim.lr, weight_decay=optim.weight_decay)


def set_epoch_lr(opt: torch.optim.Optimizer, optim: OptimRecipe, epoch: int) -> float:
    lr = optim.lr_at(epoch)
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
    return lr


def clip_gradients(params: Iterable[nn.Parameter], clip: GradClip) -> None:
    """Clip the ``.grad`` of ``params`` in place as ``clip`` says: each tensor to L2 norm
    <= ``max_norm`` (``per_parameter``), or all together with ``clip_grad_norm_``. Callers
    pass true-scale gradients (after GradScaler.unscale_ and the gradient all-reduce)."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return
    if not clip.per_parameter:
        torch.nn.utils.clip_grad_norm_(with_grad, clip.max_norm)  # reads and scales p.grad
        return
    grads = [p.grad for p in with_grad]
    # One fused norm per tensor, no host sync: g ← g · min(1, max_norm / (‖g‖ + 1e-6)).
    norms = torch._foreach_norm(grads)
    torch._foreach_mul_(grads, [(clip.max_norm / (n + 1e-6)).clamp(max=1.0) for n in norms])


def _set_epoch(loader: Any, epoch: int) -> None:
    # Samplers whose draw depends on the epoch (PK, pair ratio schedule) expose set_epoch.
    for obj in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None),
                getattr(loader, "dataset", None)):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


@preempt.stopping_at_step_boundaries
def train_stage(model: nn.Module, loader: Any, step: StepFn, optim: OptimRecipe, *,
                groups: Sequence[tuple[Iterable[nn.Parameter], float]] | None = None,
                device: torch.device | str = "cpu", stage: str = "train",
                checkpoint: Path | None = None, checkpoint_every: int = 0,
                accel: Any = None,
                checkpoint_minutes: float | None = None) -> list[dict[str, float]]:
    """Train ``model`` for ``optim.epochs`` epochs over ``loader``.

    ``step(batch)`` moves the batch to the device, runs the forward pass and returns
    ``(loss, scalars)``. ``groups`` are the parameter groups with their lr multipliers
    (default: all parameters, ×1). With ``checkpoint`` set and ``checkpoint_every`` > 0 the
    model/optimiser/RNG state is saved atomically every that many epochs and a re-run resumes
    from it; also at the end of any epoch once ``checkpoint_minutes`` (default: the runner's
    ``LoopSettings``) passed since the last save, so a slow first epochs never go unsaved.
    Raises ``DivergedError`` (with the global step) on a non-finite loss.
    Returns one dict of mean scalars per epoch. Logs one INFO line per epoch (epoch, lr, mean
    loss and scalars, seconds) on this module's logger; on a terminal a tqdm bar per epoch
    shows the step count, ETA and running mean loss.

    ``accel`` (``reid_bench.engine.accel.Accel``/``AccelOptions``; default: the switches the runner set
    with ``accel.use``, else none) turns on autocast/GradScaler/channels_last/compile; inside a
    torchrun process group the loader is sharded across ranks and the model is wrapped in
    ``DistributedDataParallel`` (see ``reid_bench.engine.train_fast``/``reid_bench.engine.distributed``; a model
    the caller already wrapped in DDP is used as is). With neither, the loop is the plain fp32
    one. ``optim.grad_clip`` clips once per step, after the gradient all-reduce and the fp16
    unscaling. Inside a ``--shakedown`` run (``reid_bench.table.shakedown``) the stage stops after
    that run's number of optimisation steps and reports its losses, step time and memory.
    """
    groups = groups or [(model.parameters(), 1.0)]
    opt = build_optimizer(groups, optim)
    history: list[dict[str, float]] = []
    start_epoch, global_step = 0, 0
    identity = current_identity(stage, optim)
    # Resume only the same training (config hash, code, stage recipe): a checkpoint of another
    # recipe would silently stand in for epochs this recipe never trained. Identity first (JSON
    # sidecar), then weights_only: nothing in a results folder is unpickled (checkpoint.py).
    state = ckpt.load(checkpoint, identity, stage) if checkpoint is not None else None
    skip, sums0 = 0, {}
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        ckpt.set_rng_states(state["rng"])
        if state.get("loader_rng") is not None and getattr(loader, "generator", None) is not None:
            loader.generator.set_state(state["loader_rng"])
        start_epoch, global_step, history = state["epoch"], state["step"], state["history"]
        # Stopped mid-epoch (a signal): the epoch's first ``skip`` batches are already trained.
        skip, sums0 = int(state.get("batch", 0)), dict(state.get("sums", {}))
        where = f" after batch {skip}" if skip else ""
        log.info("[%s] resumed from %s at epoch %d%s (step %d)", stage, checkpoint.name,
                 start_epoch, where, global_step)
    model.to(device)
    from .train_fast import train_fast_path

    fast = train_fast_path(model, loader, accel, device)  # None: plain fp32, one process
    if fast is not None:
        loader = fast.loader
    from . import step_probe

    limit = step_probe.step_limit()  # None outside a --shakedown run
    probe = step_probe.StageProbe(stage, device) if limit is not None else None
    params = [p for g in opt.param_groups for p in g["params"]]
    settings = _LOOP.get() or LoopSettings()
    minutes = settings.checkpoint_minutes if checkpoint_minutes is None else checkpoint_minutes
    last_save = time.monotonic()
    # metrics.csv rows of this stage (reid_bench.history; a no-op outside the runner).
    hist = stage_log(stage, optim.epochs, global_step, main=fast is None or fast.main,
                     world=world_size() if fast is not None else 1)
    gen = getattr(loader, "generator", None)

    def save(epoch: int, batch: int, sums: dict[str, float], rngs: dict, loader_rng: Any):
        # Tensors and plain containers only: it is loaded back with weights_only=True.
        ckpt.save(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "rng": rngs, "epoch": epoch, "batch": batch, "sums": sums,
                               "epoch_rng": epoch_rng, "loader_rng": loader_rng,
                               "step": global_step, "history": history}, identity)

    for epoch in range(start_epoch, optim.epochs):
        model.train()
        lr = set_epoch_lr(opt, optim, epoch)
        _set_epoch(loader, epoch)
        if skip and state is not None and state.get("epoch_rng") is not None:
            ckpt.set_rng_states(state["epoch_rng"])  # as the stopped run began this epoch
        # The RNGs as this epoch begins (a stop mid-epoch replays its batch order from them).
        epoch_rng = ckpt.rng_states() if checkpoint is not None else None
        loader_rng = gen.get_state() if gen is not None else None
        sums: dict[str, float] = dict(sums0) if skip else {}
        n = 0
        t0 = time.perf_counter()
        bar = progress(loader, desc=f"[{stage}] epoch {epoch + 1}/{optim.epochs}", unit="batch",
                       enabled=settings.progress and (fast is None or fast.main)
                       and limit is None)
        for batch in bar:
            if n < skip:  # trained before the stop this run resumes from: only drawn again
                n += 1
                if n == skip:  # the RNGs as they were when it stopped
                    ckpt.set_rng_states(state["rng"])  # type: ignore[index]
                continue
            if probe is not None:
                probe.start(batch)
            loss, scalars = step(batch) if fast is None else fast.step(step, batch)
            global_step += 1
            value = float(loss.detach())  # the step's one host sync: the check and the logs
            if probe is not None:
                probe.loss(value)
            if not math.isfinite(value):
                raise DivergedError(f"[{stage}] loss became {value} at epoch {epoch}, "
                                    f"step {global_step}; lower the learning rate or check the "
                                    "data", step=global_step)
            fault_point("train_step")
            opt.zero_grad(set_to_none=True)
            if fast is None:
                loss.backward()
            else:
                fast.backward(loss)  # DDP averages the gradients during backward
                fast.unscale(opt)
            if optim.grad_clip is not None:
                clip_gradients(params, optim.grad_clip)
            if fast is None:
                opt.step()
            else:
                fast.optimizer_step(opt)
            if probe is not None:
                probe.stop()
            n += 1
            sums["loss"] = sums.get("loss", 0.0) + value
            for k, v in scalars.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            hist.step(epoch, global_step, lr, value, scalars, batch, opt)
            if bar is not loader:
                bar.set_postfix(loss=f"{sums['loss'] / n:.4f}", refresh=False)
            if limit is not None and n >= limit:
                break
            # Preemption, timeout or Ctrl-C (preempt.py): save at this step boundary and stop.
            sig = preempt.requested() if fast is None else fast.stop_requested()
            if sig is not None:
                if checkpoint is not None and (fast is None or fast.main):
                    save(epoch, n, sums, ckpt.rng_states(), loader_rng)
                raise preempt.Preempted(preempt.signal_name(sig), stage, global_step, checkpoint)
        skip, sums0 = 0, {}
        if n == 0:
            raise ValueError(f"[{stage}] the training loader yielded no batch: the training "
                             "split is smaller than one batch (lower batch_size)")
        if fast is not None:
            sums = fast.reduce(sums)  # mean over ranks
        rec = {k: v / n for k, v in sums.items()} | {"epoch": epoch, "lr": lr,
                                                     "seconds": time.perf_counter() - t0}
        history.append(rec)
        scalars_txt = " ".join(f"{k}={v:.4f}" for k, v in rec.items()
                               if k not in ("epoch", "lr", "seconds") and math.isfinite(v))
        where = (f"shakedown: {n} step(s) of epoch 1/{optim.epochs}" if limit is not None
                 else f"epoch {epoch + 1}/{optim.epochs}")
        log.info("[%s] %s lr=%.2g %s (%.1fs)", stage, where, lr, scalars_txt, rec["seconds"])
        hist.epoch(epoch, global_step, rec, opt, model, monitor=limit is None)
        if limit is not None:
            break  # shakedown: this stage has run its steps; no checkpoint
        due = bool(checkpoint_every and (epoch + 1) % checkpoint_every == 0) or bool(
            minutes and time.monotonic() - last_save >= minutes * 60)
        if checkpoint is not None and due \
                and epoch + 1 < optim.epochs and (fast is None or fast.main):
            last_save = time.monotonic()
            # The shuffling generator too, so a resumed run draws the same batches as an
            # uninterrupted one.
            save(epoch + 1, 0, {}, ckpt.rng_states(), gen.get_state() if gen is not None
                 else None)
    if probe is not None:
        probe.finish()
    if fast is not None:
        fast.barrier()  # no rank still reads the checkpoint when rank 0 removes it
    if checkpoint is not None and (fast is None or fast.main):
        ckpt.remove(checkpoint)
    return history
