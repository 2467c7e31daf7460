"""Data-loading throughput on the synthetic dataset (pytest-benchmark).

Run: ``pytest benchmarks/bench_data.py --benchmark-only``. Each benchmark records images/s
in ``extra_info["img_per_s"]``; the time per round is for ``N_IMAGES`` images.
"""

from __future__ import annotations

import pytest
import torch

from reid_bench.data import load_dataset
from reid_bench.data.samplers import PKBatchSampler, make_loader
from reid_bench.data.torch_dataset import ImageDataset
from reid_bench.data.transforms import build_transform
from reid_bench.engine.recipe import InputRecipe

N_IMAGES = 256
RECIPE = InputRecipe(height=128, width=64, resize=(144, 72), random_crop=True, flip=True,
                     random_erasing=0.5)


@pytest.fixture(scope="module")
def train_set(tmp_path_factory):
    ds = load_dataset("synthetic", tmp_path_factory.mktemp("data"))
    return ImageDataset(ds.train, build_transform(RECIPE, train=True), relabel=True)


def _record(benchmark, n):
    benchmark.extra_info["img_per_s"] = n / benchmark.stats.stats.mean


def test_generate_synthetic(benchmark, tmp_path_factory):
    """Seconds to generate the default synthetic dataset (cold cache every round)."""
    benchmark.pedantic(lambda: load_dataset("synthetic", tmp_path_factory.mktemp("gen")),
                       rounds=3, iterations=1)
    assert benchmark.stats.stats.mean < 10  # the smoke-run budget for generation


def test_getitem_train_transform(benchmark, train_set):
    """Decode + crop + train transform, one image at a time, main process."""
    torch.manual_seed(0)
    benchmark(lambda: [train_set[i % len(train_set)] for i in range(N_IMAGES)])
    _record(benchmark, N_IMAGES)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_pk_loader(benchmark, train_set, num_workers):
    """Full DataLoader with P×K batches (16×4) and collation."""
    pk = PKBatchSampler(train_set.labels, p=16, k=4, seed=0)
    loader = make_loader(train_set, 64, shuffle=False, seed=0, num_workers=num_workers,
                         drop_last=True, batch_sampler=pk)

    def epoch():
        return sum(len(b[1]) for b in loader)

    n = benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)
    _record(benchmark, n)
