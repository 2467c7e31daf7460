"""CUDA checks of the speed switches (``nox -s gpu``; deselected on CPU by ``-m 'not gpu'``)."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from reid_bench.data.samplers import make_loader
from reid_bench.engine.accel import AccelOptions, resolve
from reid_bench.engine.recipe import OptimRecipe
from reid_bench.engine.train import train_stage
from reid_bench.models.backbones import build_backbone

pytestmark = pytest.mark.gpu


def _need_cuda():
    if not torch.cuda.is_available():
        pytest.fail("needs CUDA")


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32", "tf32"])
def test_train_stage_precision_channels_last_on_cuda(precision):
    _need_cuda()
    torch.manual_seed(0)
    labels = torch.arange(16).repeat_interleave(8)
    protos = torch.randn(16, 3, 64, 32)
    ds = TensorDataset(protos[labels] + 0.3 * torch.randn(len(labels), 3, 64, 32), labels)
    bb = build_backbone("resnet50", width=0.25, pretrained="none")
    model = nn.Sequential(bb, nn.Linear(bb.feature_dim, 16)).cuda()
    loader = make_loader(ds, 32, shuffle=True, seed=0, drop_last=True, pin_memory=True)

    def step(batch):
        x, y = (t.cuda(non_blocking=True) for t in batch)
        return nn.functional.cross_entropy(model(x), y), {}

    acc = resolve(AccelOptions(precision=precision, channels_last=True), "cuda")
    assert acc.grad_scaler == (precision == "fp16") and acc.precision == precision
    hist = train_stage(model, loader, step, OptimRecipe(lr=0.05, epochs=6, momentum=0.9),
                       device="cuda", accel=acc)
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_default_is_the_papers_ieee_fp32_on_cuda():
    _need_cuda()
    acc = resolve(AccelOptions(), "cuda")
    assert acc.amp_dtype is None and not acc.channels_last and acc.tag == "fp32+cudnn"
    assert torch.backends.cudnn.benchmark
    # TF32 off for matmuls and cuDNN convolutions (torch enables it for convolutions by default).
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    resolve(AccelOptions(precision="tf32"), "cuda")
    assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    resolve(AccelOptions(), "cuda")
