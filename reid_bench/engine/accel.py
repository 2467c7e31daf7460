"""Numerical precision and speed switches for training and embedding: precision (fp32, TF32,
bf16 or fp16 autocast), channels_last, torch.compile and cuDNN autotuning.

``AccelOptions`` is what a user asks for (``--precision``, ``--channels-last``, ``--compile``);
``resolve(device)`` turns it into the concrete ``Accel`` for one device and sets the global
TF32 switches. The runner makes the resolved switches the *current* ones while a method's
``fit`` runs (``use``), so ``train_stage`` and ``embed.make_embedder`` apply them to every
method without the methods knowing; a method may also pass ``accel=`` to ``train_stage``.

Precision (``--precision``, recorded per cell in the CSV ``precision`` column):

* ``fp32`` (default): the papers' precision. All of them (2016–2018, Caffe/MatConvNet/PyTorch
  on Maxwell/Pascal GPUs) trained in IEEE fp32; TF32 did not exist. So fp32 here means IEEE
  fp32 everywhere: TF32 is switched **off** for matmuls, cuDNN convolutions and RNNs (recent
  torch enables TF32 for cuDNN convolutions by default, which would silently change the
  arithmetic). No spec opts into TF32: a paper that predates it cannot say so, and whether
  TF32 changes a re-id table has not been measured; until it is, TF32 is only ever on when the
  user asks for it, and the report flags it.
* ``tf32``: fp32 storage with TF32 tensor-core matmuls/convolutions (CUDA, Ampere+). On CPU
  there is no TF32: resolves to ``fp32``.
* ``bf16``: bf16 autocast of the forward pass (fp32 weights, optimiser and loss scaling not
  needed: bf16 has fp32's exponent range).
* ``fp16``: fp16 autocast with dynamic loss scaling (``GradScaler``); gradients are unscaled
  before clipping and before the optimiser step.

Anything but fp32 differs from the papers' setting; the report marks such rows. channels_last
is a memory layout (the same arithmetic up to rounding order): off by default, recorded per
cell. ``torch.compile`` is opt-in (its compile time dominates short stages). Measured figures:
docs/benchmarks.md.

The data-parallel (DDP) path of ``train_stage`` is ``reid_bench.engine.train_fast`` (it applies
these switches inside the training loop).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from ..core.scoped import Scoped
from ..core.strict import Strict

Precision = Literal["fp32", "tf32", "bf16", "fp16"]
#: The precision every paper in papers/ trained in (see the module docstring).
PAPER_PRECISION = "fp32"
_AMP_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}


class AccelOptions(Strict):
    """Requested switches (CLI flags / RunOptions)."""

    precision: Precision = "fp32"
    channels_last: bool = False
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
    precision: str = "fp32"  # fp32 | tf32 | bf16 | fp16 (resolved for the device)

    @property
    def grad_scaler(self) -> bool:
        """fp16 needs dynamic loss scaling (its exponent range underflows small gradients);
        bf16 has fp32's range and does not."""
        return self.amp_dtype == "float16"

    @property
    def active(self) -> bool:
        """Whether ``train_stage`` needs the fast path (autocast, layout or compile)."""
        return bool(self.amp_dtype or self.channels_last or self.compile)

    @property
    def tag(self) -> str:
        """Compact provenance string, e.g. ``bf16+cl+cudnn`` or ``fp32``."""
        parts = ["fp16+scaler" if self.grad_scaler else self.precision]
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


def set_tf32(enabled: bool) -> None:
    """TF32 for CUDA matmuls, cuDNN convolutions and RNNs on (``tf32``) or off (IEEE fp32)."""
    mode = "tf32" if enabled else "ieee"
    backends = torch.backends
    if hasattr(backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
        backends.cuda.matmul.fp32_precision = mode
        backends.cudnn.conv.fp32_precision = mode
        backends.cudnn.rnn.fp32_precision = mode
    else:  # pragma: no cover — older torch
        backends.cuda.matmul.allow_tf32 = enabled
        backends.cudnn.allow_tf32 = enabled


def resolve(opts: AccelOptions | None, device: torch.device | str) -> Accel:
    """The concrete switches of ``opts`` on ``device``; on CUDA also sets cudnn.benchmark and
    the TF32 switches (on only for ``tf32``)."""
    opts = opts or AccelOptions()
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    precision = opts.precision
    if precision == "tf32" and not cuda:
        precision = "fp32"  # TF32 is a tensor-core format: CPU arithmetic stays IEEE fp32
    bench = bool(opts.cudnn_benchmark and cuda)
    if cuda:
        torch.backends.cudnn.benchmark = bench
        set_tf32(precision == "tf32")
    return Accel(device_type=dev.type, amp_dtype=_AMP_DTYPE.get(precision),
                 channels_last=opts.channels_last, compile=opts.compile, cudnn_benchmark=bench,
                 sync_bn=opts.sync_bn, precision=precision)


_CURRENT: Scoped[Accel | None] = Scoped("reid_bench_accel", None)


def current() -> Accel | None:
    """The switches set by ``use`` (None outside: plain fp32 training)."""
    return _CURRENT.get()


def use(accel: Accel | None) -> contextlib.AbstractContextManager[Accel | None]:
    """Make ``accel`` the current switches for the ``train_stage`` calls inside the block."""
    return _CURRENT.use(accel)
