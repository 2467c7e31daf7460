"""Training-step and feature-extraction throughput of ResNet-50 (IDE head) at 256×128 (re-id)
and 224×224 (ImageNet), with and without AMP / channels_last / torch.compile (pytest-benchmark).

Run: ``pytest benchmarks/bench_train.py --benchmark-only`` (CPU variants, small batches, < 3
minutes on 2 cores) and ``nox -s gpu`` / ``pytest -m gpu benchmarks/bench_train.py`` for the
real-size CUDA variants (batch 128/256, incl. torch.compile). Each benchmark stores images/s in
``extra_info["img_per_s"]`` and the switches in ``extra_info["accel"]``; the time per round is
for ``batch × STEPS`` images. Figures and commands: docs/benchmarks.md.

The step is the one ``train_stage`` runs through ``reid_bench.accel`` (autocast forward,
cross-entropy, GradScaler for fp16, SGD step), on synthetic tensors, so the loader is not
measured here (benchmarks/bench_data.py does that).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reid_bench.accel import AccelOptions, resolve
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


def _setup(device: str, size: str, opts: AccelOptions, batch: int):
    torch.manual_seed(0)
    dev = torch.device(device)
    acc = resolve(opts, dev)
    model = _IDE().to(dev)
    acc.prepare_model(model)
    h, w = SIZES[size]
    x = acc.prepare_batch(torch.randn(batch, 3, h, w)).to(dev)
    y = torch.randint(0, NUM_CLASSES, (batch,), device=dev)
    return dev, acc, model, x, y


def _train_bench(benchmark, device: str, size: str, opts: AccelOptions, batch: int,
                 steps: int, rounds: int, warmup: int = 1) -> float:
    dev, acc, model, x, y = _setup(device, size, opts, batch)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = acc.grad_scaler_for()

    def run():
        for _ in range(steps):
            with acc.autocast():
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
        _sync(dev)

    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=warmup)
    return _record(benchmark, batch * steps, acc, dev)


def _embed_bench(benchmark, device: str, size: str, opts: AccelOptions, batch: int,
                 steps: int, rounds: int, warmup: int = 1) -> float:
    dev, acc, model, x, _ = _setup(device, size, opts, batch)
    model.eval()

    @torch.inference_mode()
    def run():
        for _ in range(steps):
            with acc.autocast():
                model(x).float()
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
    "fp32": AccelOptions(amp="off", channels_last=False),
    "channels_last": AccelOptions(amp="off", channels_last=True),
}
# CPU bf16 autocast: one small measurement only — without native bf16 (AMX) it runs 10-40×
# slower than fp32, which is why AMP is off by default on CPU.
CPU_BF16 = AccelOptions(amp="bf16", channels_last=False)


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
    "fp32": AccelOptions(amp="off", channels_last=False, cudnn_benchmark=True),
    "amp": AccelOptions(amp="auto", channels_last=False),
    "amp+channels_last": AccelOptions(amp="auto", channels_last=True),
    "amp+channels_last+compile": AccelOptions(amp="auto", channels_last=True, compile=True),
    "fp16+channels_last": AccelOptions(amp="fp16", channels_last=True),
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
