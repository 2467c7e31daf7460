"""Data-parallel training on CPU (gloo, 2 processes) through ``train_stage`` vs 1 process, and
the accel switches on CPU."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from reid_bench.data.samplers import PKBatchSampler, make_loader
from reid_bench.engine.accel import AccelOptions, use
from reid_bench.engine.recipe import OptimRecipe
from reid_bench.engine.train import train_stage

EPOCHS = 4


def _data():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(8).repeat_interleave(6)  # 8 identities × 6 images
    protos = torch.randn(8, 3, 8, 8, generator=g)
    x = protos[labels] + 0.5 * torch.randn(len(labels), 3, 8, 8, generator=g)
    return TensorDataset(x, labels)


def _model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 8))


def _train(ddp_wrap: bool = False, accel=None):
    ds = _data()
    model = _model()
    net = nn.parallel.DistributedDataParallel(model) if ddp_wrap else model
    loader = make_loader(ds, 8, shuffle=False, seed=0, drop_last=True,
                         batch_sampler=PKBatchSampler(ds.tensors[1].tolist(), p=4, k=2, seed=0))

    def step(batch):
        x, y = batch
        return nn.functional.cross_entropy(net(x), y), {}

    hist = train_stage(net, loader, step, OptimRecipe(lr=0.1, epochs=EPOCHS, momentum=0.9),
                       accel=accel)
    return [h["loss"] for h in hist], torch.cat([p.detach().flatten()
                                                for p in model.parameters()])


def _join_group(rank, world, port):
    """This forked process as rank ``rank`` of a CPU process group; returns the module."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from reid_bench.engine import distributed

    distributed.init_from_env("cpu")
    return distributed


def _worker(rank, world, port, out):
    distributed = _join_group(rank, world, port)
    try:
        losses, params = _train()
        losses_ddp, params_ddp = _train(ddp_wrap=True)
        torch.save({"losses": losses, "params": params, "losses_ddp": losses_ddp,
                    "params_ddp": params_ddp}, f"{out}/rank{rank}.pt")
    finally:
        distributed.destroy()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_matches_one_process(tmp_path):
    single, _ = _train()
    # DDP's constructor and c10d import torch._dynamo (seconds): import it once here and fork,
    # so the two ranks do not each pay for it (or for importing torch).
    import torch._dynamo  # noqa: F401

    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for key in ("losses", "losses_ddp"):
        # Same trajectory shape: one averaged loss per epoch on every rank, decreasing, and
        # close to one process on the same global batches (no BatchNorm: exact up to fp).
        assert len(r0[key]) == len(r1[key]) == len(single) == EPOCHS
        assert r0[key] == pytest.approx(r1[key])
        assert r0[key][-1] < 0.5 * r0[key][0]
        assert r0[key] == pytest.approx(single, rel=1e-3, abs=1e-4)
    # Gradients were averaged: both ranks end with the same weights, with either mechanism.
    assert torch.allclose(r0["params"], r1["params"], atol=1e-6)
    assert torch.allclose(r0["params_ddp"], r1["params_ddp"], atol=1e-6)


def test_accel_path_on_cpu_trains_and_default_is_plain():
    base, p_base = _train()
    again, p_again = _train(accel=AccelOptions())  # CPU defaults: nothing on → plain loop
    assert base == again and torch.equal(p_base, p_again)
    with use(None):
        fast, _ = _train(accel=AccelOptions(precision="bf16", channels_last=True))
    assert len(fast) == EPOCHS and fast[-1] < 0.5 * fast[0]
    assert fast == pytest.approx(base, rel=0.1, abs=0.05)  # bf16: same curve within noise


# ------------------------------------------------------------------ DDP == one process, exactly
# One global P×K batch (4 identities × 2 images) through the real ``train_stage`` and the real
# training steps of IDE (cross-entropy) and Deep-Person (batch-hard triplet + part softmax).
# Models without BatchNorm (per-rank statistics on CPU would differ from one process by design;
# SyncBN is CUDA-only), so two ranks must reproduce one process's loss and gradients to fp
# rounding. Without the global-batch gather, the triplet loss would mine within each rank's two
# identities and differ.


class _TinyBackbone(nn.Module):
    feature_dim = 6

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def feature_map(self, x):
        return torch.relu(self.conv(x))

    def forward(self, x):
        return self.feature_map(x).mean(dim=(2, 3))


def _pk_batch():
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(4).repeat_interleave(2)
    return TensorDataset(torch.randn(8, 3, 8, 4, generator=g), labels)


def _method_model(kind: str):
    torch.manual_seed(7)
    if kind in ("ide", "unused"):
        from reid_bench.models._common import ClassifierNet, softmax_step

        model = ClassifierNet(_TinyBackbone(), 4, dropout=0.0)
        if kind == "unused":  # a trainable layer the step never reaches (DDP must not stall)
            model.spare = nn.Linear(3, 3)
        return model, softmax_step(model, torch.device("cpu"))
    from reid_bench.models.deep_person import (
        DeepPersonArch,
        DeepPersonLoss,
        DeepPersonNet,
        DeepPersonParams,
        training_step,
    )

    params = DeepPersonParams(global_branch=False, part_branch=True, triplet_branch=True)
    model = DeepPersonNet(_TinyBackbone(), 4, params,
                          DeepPersonArch(num_parts=2, lstm_hidden=3))
    return model, training_step(model, params, DeepPersonLoss(margin=5.0), torch.device("cpu"))


KINDS = ("ide", "deep_person", "unused")


def _one_step(kind: str):
    ds = _pk_batch()
    model, step = _method_model(kind)
    loader = make_loader(ds, 8, shuffle=False, seed=0, drop_last=True,
                         batch_sampler=PKBatchSampler(ds.tensors[1].tolist(), p=4, k=2, seed=0))
    hist = train_stage(model, loader, step, OptimRecipe(lr=1e-9, epochs=1, momentum=0.0,
                                                        weight_decay=0.0))
    assert len(loader) == 1  # exactly one step: the .grad left behind is that step's
    return hist[0], torch.cat([p.grad.flatten() if p.grad is not None else torch.full_like(
        p, float("nan")).flatten() for p in model.parameters()])


def _method_worker(rank, world, port, out):
    distributed = _join_group(rank, world, port)
    try:
        torch.save({k: _one_step(k) for k in KINDS}, f"{out}/m{rank}.pt")
    finally:
        distributed.destroy()


def test_ddp_two_ranks_equal_one_process_ide_and_deep_person(tmp_path):
    single = {k: _one_step(k) for k in KINDS}
    # Margin 5 keeps every anchor's hinge active, so every triplet term carries gradient.
    assert single["deep_person"][0]["trp"] > 0
    import torch._dynamo  # noqa: F401  (see above: imported once, before the fork)

    mp.start_processes(_method_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
                       join=True, start_method="fork")
    ranks = [torch.load(tmp_path / f"m{r}.pt") for r in range(2)]
    for kind, (hist, grad) in single.items():
        for r in ranks:
            h, g = r[kind]
            assert h["loss"] == pytest.approx(hist["loss"], abs=1e-5), kind
            if kind == "deep_person":  # the triplet term saw the global batch on each rank
                assert h["trp"] == pytest.approx(hist["trp"], abs=1e-5)
            # NaN marks a parameter without gradient: the unused layer has none here either.
            torch.testing.assert_close(g, grad, atol=1e-5, rtol=0, equal_nan=True, msg=kind)


def test_triplet_loss_per_rank_would_differ():
    """The check above can fail: mined within one rank's half of the batch, the triplet loss
    is not the global one."""
    from reid_bench.models.deep_person import batch_hard_triplet_loss

    torch.manual_seed(0)
    f, y = torch.randn(8, 6), torch.arange(4).repeat_interleave(2)
    full = batch_hard_triplet_loss(f, y, 5.0)[0]
    halves = (batch_hard_triplet_loss(f[:4], y[:4], 5.0)[0]
              + batch_hard_triplet_loss(f[4:], y[4:], 5.0)[0]) / 2
    assert abs(float(full - halves)) > 1e-3
