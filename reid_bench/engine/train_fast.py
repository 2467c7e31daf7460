"""The training loop's fast path: what ``train_stage`` does differently when speed switches
(``reid_bench.engine.accel``) are on or training is distributed.

Distributed (torchrun, ``reid_bench.engine.distributed``): the model is wrapped in
``torch.nn.parallel.DistributedDataParallel`` (bucketed gradient all-reduce overlapped with the
backward pass; rank 0's initial weights broadcast at construction). The wrapped module is a
thin adapter whose ``forward`` runs the method's whole ``step`` (batch → loss), so DDP sees
every parameter use of the step, including heads a loss calls outside the model's
``forward``. In-batch losses gather the global batch themselves
(``distributed.gather_with_grad``), so N ranks compute the loss of one process.
"""

from __future__ import annotations

import signal
from typing import Any

import torch

from ..core import preempt
from . import distributed
from .accel import Accel, AccelOptions, current, resolve


class _StepModule(torch.nn.Module):
    """DDP adapter: ``forward(step_fn, batch)`` runs the method's step on the wrapped model, so
    DDP's forward bookkeeping (buffer broadcast, reducer preparation) brackets everything the
    step does with the parameters, whichever of the model's methods it calls."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, step_fn: Any, batch: Any) -> Any:
        return step_fn(batch)


class TrainFastPath:
    """What ``train_stage`` does differently when switches are on or training is distributed:
    the rank's shard of the loader, the DDP wrapper, autocast around the forward, GradScaler
    for fp16 (unscaled before clipping), loss checks agreed by all ranks, rank-0-only
    checkpoints."""

    def __init__(self, model: torch.nn.Module, loader: Any, accel: Accel, device: Any):
        self.accel = accel
        self.distributed = distributed.is_distributed()
        self.main = distributed.is_main()
        self.model = model
        self.ddp: torch.nn.Module | None = None
        if self.distributed:
            if accel.sync_bn:
                distributed.convert_sync_batchnorm(model)
            loader = distributed.shard_loader(loader, distributed.rank(),
                                              distributed.world_size())
        accel.prepare_model(model)
        # A caller's own DDP wrapper is used as is.
        if self.distributed and not distributed.is_ddp(model):
            dev = next((p.device for p in model.parameters()), torch.device(device))
            # DDP broadcasts rank 0's parameters and buffers at construction; its hooks average
            # the gradients during backward (bucketed, overlapped with compute). The "forward"
            # output is the step's loss, so the unused-parameter search starts from the loss:
            # trainable parameters a step does not reach (e.g. a backbone's FC layers under MAC
            # pooling) are reduced as zero instead of stalling the reducer.
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                _StepModule(model), device_ids=[dev] if dev.type == "cuda" else None,
                broadcast_buffers=True, find_unused_parameters=True)
        self.loader = loader
        self.scaler = accel.grad_scaler_for()
        self._stop = False

    def step(self, step_fn: Any, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """``step_fn(batch)`` under autocast (through DDP when distributed); the loss comes
        back as NaN on every rank if it is non-finite on any rank, so all ranks stop
        together."""
        batch = self.accel.prepare_batch(batch)
        with self.accel.autocast():
            loss, scalars = (step_fn(batch) if self.ddp is None
                             else self.ddp(step_fn, batch))
        if self.distributed:
            import torch.distributed as dist

            # On the loss's device: NCCL only takes CUDA tensors. The same all-reduce agrees
            # on a stop request (preempt.py), so every rank stops after the same step.
            bad = (~torch.isfinite(loss.detach())).float().reshape(1)
            stop = torch.full_like(bad, float(preempt.requested() is not None))
            flags = torch.cat([bad, stop])
            dist.all_reduce(flags)
            bad_any, self._stop = (bool(v) for v in flags.tolist())
            if bad_any and bool(torch.isfinite(loss.detach())):
                loss = loss.detach() * float("nan")
        return loss, scalars

    def stop_requested(self) -> int | None:
        """The stop signal to act on after this step: the local request in one process; in a
        distributed job only one all ranks agreed on in this step's all-reduce (a rank acting
        on its own would leave the others waiting in a collective)."""
        if not self.distributed:
            return preempt.requested()
        return (preempt.requested() or signal.SIGTERM) if self._stop else None

    def backward(self, loss: torch.Tensor) -> None:
        """backward (loss-scaled for fp16; DDP averages the gradients during it)."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def unscale(self, opt: torch.optim.Optimizer) -> None:
        """Gradients back to their true scale (fp16), before clipping looks at them."""
        if self.scaler is not None:
            self.scaler.unscale_(opt)

    def optimizer_step(self, opt: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(opt)  # skipped when the unscaled gradients hold inf/NaN
            self.scaler.update()
        else:
            opt.step()

    def reduce(self, sums: dict[str, float]) -> dict[str, float]:
        """Per-epoch sums averaged across ranks (every rank runs the same number of steps)."""
        if not self.distributed:
            return sums
        keys = sorted(sums)
        return dict(zip(keys, distributed.allreduce_mean([sums[k] for k in keys]), strict=True))

    def barrier(self) -> None:
        distributed.barrier()


def train_fast_path(model: torch.nn.Module, loader: Any, accel: Any,
                    device: Any) -> TrainFastPath | None:
    """The fast path for ``train_stage``, or None for the plain fp32 single-process loop.
    ``accel``: an ``Accel``, ``AccelOptions`` (resolved for ``device``) or None (the current
    switches set by ``use``)."""
    if isinstance(accel, AccelOptions):
        accel = resolve(accel, device)
    accel = accel if accel is not None else current()
    if (accel is None or not accel.active) and not distributed.is_distributed():
        return None
    return TrainFastPath(model, loader, accel or Accel(device_type=torch.device(device).type),
                         device)
