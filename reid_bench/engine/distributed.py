"""Data-parallel training across processes (torchrun): process-group setup, rank helpers,
batch samplers that split each global batch across ranks without splitting an identity, the
in-batch gather with gradient for losses over the global batch, and SyncBN conversion.

Design: every rank builds the same model and the same loader (same seed), so every rank's base
sampler draws the same global batches. ``shard_loader`` re-wraps the loader so rank r takes the
r-th part of each global batch: a P×K batch is cut between identities (each rank gets P/W whole
identities with their K images), a pair batch between pairs. The global batch therefore stays
the recipe's batch size (the paper's) and the number of steps per epoch is unchanged.
``train_stage`` wraps the model in ``DistributedDataParallel`` (``reid_bench.engine.train_fast``), which
averages the ranks' gradients: the gradient of the global batch's mean loss for per-sample
losses. A loss over pairs/triplets mined *within* the batch (Deep-Person's batch-hard triplet)
calls ``gather_with_grad`` first, so it sees the global P×K batch as one process would.

Collectives run on the process group's device: CUDA tensors under NCCL, CPU under gloo.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


# ---------------------------------------------------------------- process group
def env_world_size() -> int:
    """WORLD_SIZE from the torchrun environment (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0 (or not distributed): the process that evaluates and writes results."""
    return rank() == 0


def init_from_env(device: str | None = None) -> torch.device:
    """Initialise the default process group from torchrun's environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT) and return this rank's device: ``cuda:LOCAL_RANK`` with NCCL when
    CUDA is available (and ``device`` is not "cpu"), else CPU with gloo. Without WORLD_SIZE > 1
    nothing is initialised and ``device`` (default cpu/cuda) is returned."""
    want_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if env_world_size() <= 1 or (dist.is_initialized()):
        return torch.device(f"cuda:{local_rank()}" if want_cuda else (device or "cpu"))
    # Ranks > 0 wait in a collective while rank 0 evaluates (minutes on large galleries): a
    # generous timeout instead of NCCL's 10-minute default.
    from datetime import timedelta

    timeout = timedelta(minutes=int(os.environ.get("REID_BENCH_DIST_TIMEOUT_MIN", "180")))
    if want_cuda:
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl", device_id=torch.device(f"cuda:{local_rank()}"),
                                timeout=timeout)
        return torch.device(f"cuda:{local_rank()}")
    dist.init_process_group("gloo", timeout=timeout)
    return torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (identity when not distributed)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------- samplers
def chunk_batch(batch: Sequence[Any], rank: int, world: int, group: int = 1) -> list[Any]:
    """The ``rank``-th of ``world`` contiguous parts of ``batch``, cut only at multiples of
    ``group`` (so groups of ``group`` consecutive items — one identity's K images — stay
    together). Groups are spread as evenly as possible; raises ValueError when there are fewer
    groups than ranks."""
    n_groups = len(batch) // group
    if n_groups * group != len(batch):
        raise ValueError(f"batch of {len(batch)} is not whole groups of {group}")
    if n_groups < world:
        raise ValueError(f"cannot split {n_groups} identity group(s) across {world} ranks: "
                         "raise the number of identities per batch (P) or use fewer processes")
    lo = rank * n_groups // world
    hi = (rank + 1) * n_groups // world
    return list(batch[lo * group:hi * group])


class ChunkedBatchSampler:
    """Wraps a batch sampler that yields the same global batches on every rank (same seed) and
    yields this rank's part of each (``chunk_batch``). ``group`` = items that must stay on one
    rank (K for P×K batches, 1 for shuffled images or pairs). ``set_epoch`` is forwarded to the
    base batch sampler and to its inner ``sampler`` (a PairSampler's epoch/ratio)."""

    def __init__(self, base: Any, rank: int, world: int, group: int = 1):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world of {world}")
        self.base, self.rank, self.world, self.group = base, rank, world, group

    def set_epoch(self, epoch: int) -> None:
        for obj in (self.base, getattr(self.base, "sampler", None)):
            if obj is not None and hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator[list[Any]]:
        for batch in self.base:
            yield chunk_batch(batch, self.rank, self.world, self.group)


class DistributedPKBatchSampler(ChunkedBatchSampler):
    """P×K batches (a ``PKBatchSampler`` or any batch sampler exposing ``.k``/``.p`` or a
    ``.pk`` PKBatchSampler) split between identities: rank r gets P/W identities × K images of
    every global batch; the ranks' identities are disjoint and together the whole batch."""

    def __init__(self, pk: Any, rank: int, world: int):
        inner = pk if hasattr(pk, "k") else getattr(pk, "pk", None)
        if inner is None:
            raise TypeError(f"{type(pk).__name__} is not a P×K batch sampler")
        if inner.p % world:
            raise ValueError(f"P={inner.p} identities per batch do not split evenly across "
                             f"{world} ranks; use a P divisible by the number of processes")
        super().__init__(pk, rank, world, group=inner.k)


class DistributedPairBatchSampler(ChunkedBatchSampler):
    """Batches of pair keys ``(anchor, partner, same)`` from a ``PairSampler`` (as the loader's
    ``BatchSampler`` draws them), split between pairs: each pair stays whole on one rank."""

    def __init__(self, batch_sampler: Any, rank: int, world: int):
        super().__init__(batch_sampler, rank, world, group=1)


def _pk_group(batch_sampler: Any) -> int | None:
    for obj in (batch_sampler, getattr(batch_sampler, "pk", None)):
        if obj is not None and hasattr(obj, "k") and hasattr(obj, "p"):
            return int(obj.k)
    return None


def shard_loader(loader: Any, rank: int, world: int) -> Any:
    """A DataLoader like ``loader`` (same dataset, workers, generator) whose batches are this
    rank's part of ``loader``'s global batches. P×K batch samplers are split between
    identities; anything else (shuffled images, pairs) between items. Non-DataLoader iterables
    are returned unchanged."""
    from torch.utils.data import DataLoader

    if world <= 1 or not isinstance(loader, DataLoader) or loader.batch_sampler is None:
        return loader
    bs = loader.batch_sampler
    if isinstance(bs, ChunkedBatchSampler):
        return loader
    k = _pk_group(bs)
    if k is not None:
        sharded: ChunkedBatchSampler = DistributedPKBatchSampler(bs, rank, world)
    else:
        sharded = DistributedPairBatchSampler(bs, rank, world)
    return DataLoader(loader.dataset, batch_sampler=sharded, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      worker_init_fn=loader.worker_init_fn, generator=loader.generator,
                      persistent_workers=loader.persistent_workers if loader.num_workers else False)


# ---------------------------------------------------------------- model / gradients
def convert_sync_batchnorm(model: nn.Module) -> nn.Module:
    """BatchNorm → SyncBatchNorm (statistics over the global batch) when distributed on CUDA;
    parameters are the same objects, so optimiser groups built before stay valid. Unchanged on
    CPU (SyncBatchNorm needs CUDA) or outside a process group."""
    if (not is_distributed() or is_ddp(model)
            or not any(p.is_cuda for p in model.parameters())):
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def is_ddp(model: nn.Module) -> bool:
    return isinstance(model, nn.parallel.DistributedDataParallel)


def collective_device() -> torch.device:
    """Where this process group's collectives take their tensors: the current CUDA device
    under NCCL (it only accepts CUDA tensors), CPU under gloo or outside a process group."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_with_grad(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor concatenated over ranks in rank order (= the global batch, since rank r
    holds the r-th part of it), keeping the autograd graph: the backward pass sends every
    rank's gradient w.r.t. its own rows back to it (all-gather's adjoint sums them), so a loss
    computed identically on every rank over the gathered batch, averaged by DDP, has the
    gradient of the same loss computed by one process. Identity when not distributed. Every
    rank must pass tensors of the same shape."""
    if not is_distributed():
        return tensors
    from torch.distributed.nn.functional import all_gather

    out = []
    for t in tensors:
        if t.requires_grad:
            out.append(torch.cat(all_gather(t), dim=0))
        else:
            parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, t.contiguous())
            out.append(torch.cat(parts, dim=0))
    return tuple(out)


def allreduce_mean(values: Sequence[float]) -> list[float]:
    """Mean of each value across ranks (identity when not distributed)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=collective_device())
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()
