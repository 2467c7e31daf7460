"""Tiny methods for the reliability tests, loaded through REID_BENCH_PLUGINS (also shows that
methods can live outside the tree). ``test_tiny`` trains a 2-layer CNN for real through the
shared loop; its params inject slowness, a NaN loss or an out-of-memory error, and append to
``marker`` a line ``fit <pid> <total steps>`` every time ``fit`` runs and ``step <pid>`` at every
step, so a test can count trainings and steps across processes. Under a distributed launch,
``kill_rank``/``raise_rank`` make that rank die by SIGKILL / raise at step ``fail_at_step``
(writing the time to ``kill_stamp`` first).

``test_splits`` is a dataset with a ``split`` option (the synthetic dataset; the split only
changes the cell key), for launcher tests of ``splits: N`` columns outside ``--smoke``."""

from __future__ import annotations

import os
import signal
import time

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from reid_bench.core.registry import DATASETS, METHODS
from reid_bench.engine.method import CellContext, Method
from reid_bench.engine.train import train_stage
from reid_bench.models._common import (
    StandardRecipe,
    to_device,
    train_image_dataset,
    train_loader,
)


class TinyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sleep: float = 0.0
    nan_at_step: int | None = None
    oom: bool = False
    marker: str | None = None
    kill_rank: int | None = None
    raise_rank: int | None = None
    fail_at_step: int = 2
    kill_stamp: str | None = None


class TinyNet(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        f = self.body(x).mean(dim=(2, 3))
        return self.fc(self.drop(f)) if self.training else f


@METHODS.register("test_tiny")
class Tiny(Method):
    Params = TinyParams
    Recipe = StandardRecipe

    def build(self, params, recipe, num_classes):
        return TinyNet(num_classes)

    def fit(self, params: TinyParams, recipe, ctx: CellContext):
        if params.oom:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        ds = train_image_dataset(ctx, recipe.input)
        model = self.build(params, recipe, ds.num_classes)
        loader = train_loader(ds, recipe.train.batch_size, ctx)
        pid = os.getpid()
        _mark(params.marker, f"fit {pid} {len(loader) * recipe.train.epochs}")
        calls = {"n": 0}

        def step(batch):
            calls["n"] += 1
            _mark(params.marker, f"step {pid}")
            if params.sleep:
                time.sleep(params.sleep)
            if calls["n"] == params.fail_at_step:
                _inject_rank_failure(params)
            x, y = to_device(batch[:2], ctx.device)
            loss = F.cross_entropy(model(x), y)
            if params.nan_at_step is not None and calls["n"] >= params.nan_at_step:
                loss = loss * float("nan")
            return loss, {}

        train_stage(model, loader, step, recipe.train, device=ctx.device, stage="tiny",
                    checkpoint=ctx.work_dir / "tiny.ckpt", checkpoint_every=ctx.checkpoint_every)
        return model


def _mark(path: str | None, line: str) -> None:
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def _inject_rank_failure(params: TinyParams) -> None:
    from reid_bench.engine import distributed

    r = distributed.rank()
    if r not in (params.kill_rank, params.raise_rank):
        return
    if params.kill_stamp:
        with open(params.kill_stamp, "w") as f:
            f.write(str(time.time()))
    if r == params.kill_rank:
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected failure on rank {r}")


@DATASETS.register("test_splits")
def load_test_splits(root, split: int = 0, **options):
    from reid_bench.data.synthetic import load_synthetic

    if not 0 <= int(split) < 20:
        raise ValueError(f"split {split} outside 0..19")
    return load_synthetic(root, **options)
