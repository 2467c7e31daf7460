"""Speed switches for training and embedding: mixed precision, channels_last, torch.compile,
cuDNN autotuning.

``AccelOptions`` is what a user asks for (CLI flags / RunOptions); ``resolve(device)`` turns it
into the concrete ``Accel`` for one device (e.g. ``amp="auto"`` → bf16 on a GPU that supports
it, fp16 + GradScaler on an older GPU, off on CPU). The runner makes the resolved switches the
*current* ones while a method's ``fit`` runs (``use``), so ``train_stage`` applies them to every
method without the methods knowing; a method may also pass ``accel=`` to ``train_stage``.

Defaults: on CUDA, bf16/fp16 autocast + channels_last + cudnn.benchmark (the usual fastest
setting that leaves re-id metrics unchanged within seed noise; fp16 gets dynamic loss scaling);
``torch.compile`` is opt-in because its compile time dominates short (smoke-sized) stages. On
CPU everything is off by default: CPU autocast (bf16) is slower than fp32 on most x86 CPUs
without AMX, and the fp32 path is the reference. Measured figures: docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict


class AccelOptions(BaseModel):
    """Requested speed switches. ``None``/``"auto"`` = the device's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # auto: bf16 on CUDA with bf16 support, else fp16 (with GradScaler) on CUDA, off on CPU.
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool | None = None  # None: on for CUDA, off for CPU
    compile: bool = False
    cudnn_benchmark: bool = True  # CUDA only; fixed input sizes make autotuning pay off
    # Multi-GPU: BatchNorm statistics over the global batch, as in the paper's single-GPU
    # training (CUDA only; per-rank statistics otherwise).
    sync_bn: bool = True


@dataclass(frozen=True)
class Accel:
    """Resolved switches for one device. ``amp_dtype`` is None when autocast is off."""

    device_type: str = "cpu"
    amp_dtype: str | None = None  # "bfloat16" | "float16"
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False
    sync_bn: bool = True

    @property
    def grad_scaler(self) -> bool:
        """fp16 needs dynamic loss scaling (its exponent range underflows small gradients);
        bf16 has fp32's range and does not."""
        return self.amp_dtype == "float16"

    @property
    def active(self) -> bool:
        """Whether anything differs from the plain fp32 path."""
        return bool(self.amp_dtype or self.channels_last or self.compile)

    @property
    def tag(self) -> str:
        """Compact provenance string, e.g. ``bf16+cl+cudnn`` or ``fp32``."""
        parts = [{"bfloat16": "bf16", "float16": "fp16+scaler"}.get(self.amp_dtype or "", "fp32")]
        if self.channels_last:
            parts.append("cl")
        if self.compile:
            parts.append("compile")
        if self.cudnn_benchmark:
            parts.append("cudnn")
        return "+".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """Provenance: the switches, the data-parallel world size and the compact tag (with
        ``+ddpN`` when N > 1 processes trained together)."""
        from .distributed import world_size

        w = world_size()
        return asdict(self) | {"grad_scaler": self.grad_scaler, "world_size": w,
                               "tag": self.tag + (f"+ddp{w}" if w > 1 else "")}

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` for this device and dtype, or a no-op context."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=getattr(torch, self.amp_dtype))

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Apply channels_last and (in place) torch.compile; returns the same module object, so
        closures that hold it (a method's ``step``) use the fast path too."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.compile and not getattr(model, "_reid_bench_compiled", False):
            model.compile()  # in place: model(x) runs the compiled forward; state_dict unchanged
            model._reid_bench_compiled = True
        return model

    def prepare_batch(self, batch: Any) -> Any:
        """Image tensors (4-D float) of a batch in channels_last layout (``.to(device)`` keeps
        the layout); other entries unchanged."""
        if not self.channels_last:
            return batch
        if torch.is_tensor(batch):
            return _cl(batch)
        if isinstance(batch, (list, tuple)):
            return type(batch)(_cl(b) if torch.is_tensor(b) else b for b in batch)
        if isinstance(batch, dict):
            return {k: _cl(v) if torch.is_tensor(v) else v for k, v in batch.items()}
        return batch

    def grad_scaler_for(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device_type) if self.grad_scaler else None


def _cl(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 4 and t.is_floating_point():
        return t.contiguous(memory_format=torch.channels_last)
    return t


def resolve(opts: AccelOptions | None, device: torch.device | str) -> Accel:
    """The concrete switches of ``opts`` on ``device`` (and sets cudnn.benchmark on CUDA)."""
    opts = opts or AccelOptions()
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    amp: str | None
    if opts.amp == "off":
        amp = None
    elif opts.amp == "auto":
        if not cuda:
            amp = None
        else:
            amp = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    elif opts.amp == "fp16":
        amp = "float16"
    else:
        amp = "bfloat16"
    if amp == "float16" and not cuda:
        amp = "bfloat16"  # CPU autocast supports bf16 only; fp16 on CPU is not a speed-up
    cl = opts.channels_last if opts.channels_last is not None else cuda
    bench = bool(opts.cudnn_benchmark and cuda)
    if cuda:
        torch.backends.cudnn.benchmark = bench
        # TF32 matmuls/convs for the fp32 parts (Ampere+): same speed class as AMP's remainder.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Accel(device_type=dev.type, amp_dtype=amp, channels_last=bool(cl),
                 compile=opts.compile, cudnn_benchmark=bench, sync_bn=opts.sync_bn)


_CURRENT: contextvars.ContextVar[Accel | None] = contextvars.ContextVar("reid_bench_accel",
                                                                       default=None)


def current() -> Accel | None:
    """The switches set by ``use`` (None outside: plain fp32 training)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use(accel: Accel | None) -> Iterator[Accel | None]:
    """Make ``accel`` the current switches for the ``train_stage`` calls inside the block."""
    token = _CURRENT.set(accel)
    try:
        yield accel
    finally:
        _CURRENT.reset(token)


class TrainFastPath:
    """What ``train_stage`` does differently when speed switches are on or training is
    distributed: the rank's shard of the loader, autocast around the forward, GradScaler for
    fp16, the gradient all-reduce, loss checks agreed by all ranks, rank-0-only checkpoints."""

    def __init__(self, model: torch.nn.Module, loader: Any, accel: Accel, device: Any):
        from . import distributed as D

        self.accel = accel
        self.distributed = D.is_distributed()
        self.main = D.is_main()
        self.model = model
        if self.distributed:
            if accel.sync_bn:
                D.convert_sync_batchnorm(model)
            D.broadcast_module(model)
            loader = D.shard_loader(loader, D.rank(), D.world_size())
        accel.prepare_model(model)
        self.loader = loader
        self.scaler = accel.grad_scaler_for()

    def step(self, step_fn: Any, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """``step_fn(batch)`` under autocast; the loss comes back as NaN on every rank if it
        is non-finite on any rank, so all ranks stop together."""
        batch = self.accel.prepare_batch(batch)
        with self.accel.autocast():
            loss, scalars = step_fn(batch)
        if self.distributed:
            import torch.distributed as dist

            bad = torch.tensor([0.0 if bool(torch.isfinite(loss.detach())) else 1.0])
            dist.all_reduce(bad)
            if bad.item() and bool(torch.isfinite(loss.detach())):
                loss = loss.detach() * float("nan")
        return loss, scalars

    def backward_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        """backward (scaled for fp16), gradient all-reduce (unless the model is DDP-wrapped),
        optimiser step."""
        from . import distributed as D

        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        if self.distributed and not D.is_ddp(self.model):
            D.allreduce_gradients(self.model)
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()

    def reduce(self, sums: dict[str, float]) -> dict[str, float]:
        """Per-epoch sums averaged across ranks (every rank runs the same number of steps)."""
        if not self.distributed:
            return sums
        from . import distributed as D

        keys = sorted(sums)
        return dict(zip(keys, D.allreduce_mean([sums[k] for k in keys]), strict=True))

    def barrier(self) -> None:
        from . import distributed as D

        D.barrier()


def train_fast_path(model: torch.nn.Module, loader: Any, accel: Any,
                    device: Any) -> TrainFastPath | None:
    """The fast path for ``train_stage``, or None for the plain fp32 single-process loop.
    ``accel``: an ``Accel``, ``AccelOptions`` (resolved for ``device``) or None (the current
    switches set by ``use``)."""
    from . import distributed as D

    if isinstance(accel, AccelOptions):
        accel = resolve(accel, device)
    accel = accel if accel is not None else current()
    if (accel is None or not accel.active) and not D.is_distributed():
        return None
    return TrainFastPath(model, loader, accel or Accel(device_type=torch.device(device).type),
                         device)
