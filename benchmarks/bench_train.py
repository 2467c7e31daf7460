"""Training-step and feature-extraction throughput of ResNet-50 (IDE head) at 256×128 (re-id)
and 224×224 (ImageNet), per precision / channels_last / torch.compile (pytest-benchmark).

Run: ``pytest benchmarks/bench_train.py --benchmark-only`` (CPU variants, small batches, < 3
minutes on 2 cores) and ``nox -s gpu`` / ``pytest -m gpu benchmarks/bench_train.py`` for the
real-size CUDA variants (batch 128/256, incl. torch.compile). Each benchmark stores images/s in
``extra_info["img_per_s"]`` and the switches in ``extra_info["accel"]``; the time per round is
for ``batch × STEPS`` images. Figures and commands: docs/benchmarks.md.

What is timed is the code a run executes, not a re-implementation: training rounds are one
``reid_bench.engine.train.train_stage`` epoch with IDE's ``softmax_step`` (autocast, GradScaler for
fp16, the optimiser from the recipe, per-step loss check) over in-memory tensors (the image
loader is benchmarks/bench_data.py's subject); extraction rounds are one call of the embedder
``reid_bench.engine.embed.make_embedder`` returns, over JPEG files at the benchmark size (so they
include decoding and the test transform, with the data-loader workers a run would use).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from reid_bench.data.base import Sample
from reid_bench.data.samplers import make_loader
from reid_bench.engine.accel import AccelOptions, resolve
from reid_bench.engine.embed import make_embedder
from reid_bench.engine.recipe import InputRecipe, OptimRecipe
from reid_bench.engine.train import train_stage
from reid_bench.models._common import softmax_step
from reid_bench.models.backbones import build_backbone

SIZES = {"256x128": (256, 128), "224x224": (224, 224)}
NUM_CLASSES = 751  # Market-1501 training identities
CPU_BATCH, CPU_STEPS = 2, 2
GPU_BATCH, GPU_STEPS = 256, 20
H100_TRAIN_TARGET = 6000.0  # img/s, ResNet-50 256×128 with AMP (issue 12)


class _IDE(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = build_backbone("resnet50", width=1.0, pretrained="none")
        self.classifier = nn.Linear(self.backbone.feature_dim, NUM_CLASSES)

    def forward(self, x):
        f = self.backbone(x)
        return self.classifier(f) if self.training else f


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _setup(device: str, opts: AccelOptions):
    torch.manual_seed(0)
    dev = torch.device(device)
    return dev, resolve(opts, dev), _IDE().to(dev)


def _train_bench(benchmark, device: str, size: str, opts: AccelOptions, batch: int,
                 steps: int, rounds: int, warmup: int = 1) -> float:
    dev, acc, model = _setup(device, opts)
    h, w = SIZES[size]
    ds = TensorDataset(torch.randn(batch * steps, 3, h, w),
                       torch.randint(0, NUM_CLASSES, (batch * steps,)))
    loader = make_loader(ds, batch, shuffle=True, seed=0, drop_last=True,
                         pin_memory=dev.type == "cuda")
    optim = OptimRecipe(lr=0.01, momentum=0.9, epochs=1, batch_size=batch)
    step = softmax_step(model, dev)

    def run():
        train_stage(model, loader, step, optim, device=dev, accel=acc)
        _sync(dev)

    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=warmup)
    return _record(benchmark, batch * steps, acc, dev)


_IMAGES: dict[tuple[int, int, int], list[Sample]] = {}


def _jpegs(n: int, h: int, w: int) -> list[Sample]:
    """``n`` random JPEGs of h×w in a temporary folder (made once per size)."""
    if (n, h, w) not in _IMAGES:
        import numpy as np
        from PIL import Image

        folder = Path(tempfile.mkdtemp(prefix="reid-bench-embed-"))
        rng = np.random.default_rng(0)
        out = []
        for i in range(n):
            path = folder / f"{i:05d}.jpg"
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
            out.append(Sample(path=str(path), pid=i, camid=0))
        _IMAGES[(n, h, w)] = out
    return _IMAGES[(n, h, w)]


def _embed_bench(benchmark, device: str, size: str, opts: AccelOptions, batch: int,
                 steps: int, rounds: int, warmup: int = 1) -> float:
    dev, acc, model = _setup(device, opts)
    h, w = SIZES[size]
    samples = _jpegs(batch * steps, h, w)
    workers = min(8, os.cpu_count() or 1) if dev.type == "cuda" else 0
    embed = make_embedder(model, model, InputRecipe(height=h, width=w), device=dev,
                          batch_size=batch, num_workers=workers, accel=acc)

    def run():
        embed(samples)
        _sync(dev)

    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=warmup)
    return _record(benchmark, batch * steps, acc, dev)


def _record(benchmark, n: int, acc, dev: torch.device) -> float:
    ips = n / benchmark.stats.stats.mean
    benchmark.extra_info.update(img_per_s=round(ips, 1), accel=acc.tag, images_per_round=n,
                                device=(torch.cuda.get_device_name(dev) if dev.type == "cuda"
                                        else "cpu"),
                                threads=torch.get_num_threads())
    return ips


CPU_VARIANTS = {
    "fp32": AccelOptions(precision="fp32", channels_last=False),
    "channels_last": AccelOptions(precision="fp32", channels_last=True),
}
# CPU bf16 autocast: one small measurement only — without native bf16 (AMX) it runs 10-40×
# slower than fp32.
CPU_BF16 = AccelOptions(precision="bf16", channels_last=False)


# ---------------------------------------------------------------- CPU (always runnable)
@pytest.mark.parametrize("variant", list(CPU_VARIANTS))
@pytest.mark.parametrize("size", list(SIZES))
def test_train_step_cpu(benchmark, size, variant):
    """One SGD step of ResNet-50 + 751-way classifier, batch 2, CPU."""
    ips = _train_bench(benchmark, "cpu", size, CPU_VARIANTS[variant], CPU_BATCH, CPU_STEPS,
                       rounds=2)
    assert ips > 0


@pytest.mark.parametrize("variant", list(CPU_VARIANTS))
@pytest.mark.parametrize("size", list(SIZES))
def test_extract_features_cpu(benchmark, size, variant):
    """Evaluation feature extraction (eval mode, no grad), batch 2, CPU."""
    ips = _embed_bench(benchmark, "cpu", size, CPU_VARIANTS[variant], CPU_BATCH, CPU_STEPS,
                       rounds=2)
    assert ips > 0


def test_train_step_cpu_bf16(benchmark):
    assert _train_bench(benchmark, "cpu", "256x128", CPU_BF16, 1, 1, rounds=1, warmup=0) > 0


def test_extract_features_cpu_bf16(benchmark):
    assert _embed_bench(benchmark, "cpu", "256x128", CPU_BF16, 1, 1, rounds=1, warmup=0) > 0


# ---------------------------------------------------------------- CUDA (nox -s gpu)
GPU_VARIANTS = {
    "fp32": AccelOptions(precision="fp32"),  # the papers' precision, the default
    "tf32": AccelOptions(precision="tf32"),
    "amp": AccelOptions(precision="bf16"),
    "amp+channels_last": AccelOptions(precision="bf16", channels_last=True),
    "amp+channels_last+compile": AccelOptions(precision="bf16", channels_last=True,
                                              compile=True),
    "fp16+channels_last": AccelOptions(precision="fp16", channels_last=True),
}


def _need_cuda():
    if not torch.cuda.is_available():
        pytest.fail("this benchmark needs CUDA (run it with `nox -s gpu` on a GPU machine)")


@pytest.mark.gpu
@pytest.mark.parametrize("variant", list(GPU_VARIANTS))
@pytest.mark.parametrize("size", list(SIZES))
def test_train_step_gpu(benchmark, size, variant):
    """Training img/s, batch 256; the issue's target: ≥ 6,000 img/s at 256×128 with AMP on
    one H100."""
    _need_cuda()
    ips = _train_bench(benchmark, "cuda", size, GPU_VARIANTS[variant], GPU_BATCH, GPU_STEPS,
                       rounds=5)
    if (size == "256x128" and variant.startswith("amp+channels_last")
            and "H100" in torch.cuda.get_device_name()):
        assert ips >= H100_TRAIN_TARGET, f"{ips:.0f} img/s < {H100_TRAIN_TARGET:.0f} target"


@pytest.mark.gpu
@pytest.mark.parametrize("variant", list(GPU_VARIANTS))
@pytest.mark.parametrize("size", list(SIZES))
def test_extract_features_gpu(benchmark, size, variant):
    """Feature extraction img/s, batch 256."""
    _need_cuda()
    assert _embed_bench(benchmark, "cuda", size, GPU_VARIANTS[variant], GPU_BATCH, GPU_STEPS,
                        rounds=5) > 0
