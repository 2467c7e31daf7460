"""Precision switches: fp16 loss scaling with gradient clipping, resolution of --precision,
and the embedding pass under the same switches."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from reid_bench.data.samplers import make_loader
from reid_bench.engine.accel import Accel, AccelOptions, resolve
from reid_bench.engine.recipe import GradClip, OptimRecipe
from reid_bench.engine.train import train_stage


def _clip_run(accel, per_parameter: bool):
    torch.manual_seed(0)
    x = 0.1 * torch.randn(8, 16)
    y = torch.arange(8) % 4
    model = nn.Linear(16, 4)
    before = [p.detach().clone() for p in model.parameters()]
    loader = make_loader(TensorDataset(x, y), 8, shuffle=False, seed=0, drop_last=True)

    def step(batch):
        xb, yb = batch
        return nn.functional.cross_entropy(model(xb), yb), {}

    clip = GradClip(max_norm=1e-3, per_parameter=per_parameter)
    train_stage(model, loader, step, OptimRecipe(lr=1.0, momentum=0.0, weight_decay=0.0,
                                                 epochs=1, grad_clip=clip),
                accel=accel)
    return [p.detach() - b for p, b in zip(model.parameters(), before, strict=True)]


@pytest.mark.parametrize("per_parameter", [False, True])
def test_fp16_grad_scaler_clipping_equals_fp32_clipping(per_parameter):
    """Clipping acts on true-scale gradients: under fp16 autocast + GradScaler (initial scale
    2^16) the clipped update equals fp32's up to fp16 rounding of the forward. Clipping the
    scaled gradients (the old per-parameter hooks) would shrink the update ~65536-fold."""
    fp32 = _clip_run(None, per_parameter)
    fp16 = Accel(device_type="cpu", amp_dtype="float16", precision="fp16")
    assert fp16.grad_scaler
    half = _clip_run(fp16, per_parameter)
    # The clip was active: the update has the clipped norm (lr = 1).
    if per_parameter:
        assert all(float(d.norm()) == pytest.approx(1e-3, rel=1e-3) for d in fp32)
    else:
        assert float(torch.cat([d.flatten() for d in fp32]).norm()) == pytest.approx(1e-3,
                                                                                    rel=1e-3)
    for a, b in zip(fp32, half, strict=True):
        torch.testing.assert_close(b, a, rtol=2e-2, atol=2e-6)


def test_precision_resolution_default_is_papers_fp32():
    a = resolve(AccelOptions(), "cpu")
    assert (a.precision, a.amp_dtype, a.channels_last, a.tag) == ("fp32", None, False, "fp32")
    assert not a.active
    assert resolve(AccelOptions(precision="tf32"), "cpu").precision == "fp32"  # no CPU TF32
    b = resolve(AccelOptions(precision="bf16", channels_last=True), "cpu")
    assert (b.amp_dtype, b.grad_scaler, b.tag) == ("bfloat16", False, "bf16+cl")
    c = resolve(AccelOptions(precision="fp16"), "cpu")
    assert (c.amp_dtype, c.grad_scaler, c.tag) == ("float16", True, "fp16+scaler")
    d = c.as_dict()
    assert d["precision"] == "fp16" and d["world_size"] == 1 and d["tag"] == "fp16+scaler"
    with pytest.raises(ValueError):
        AccelOptions(precision="fp8")


def test_embedder_runs_under_the_run_precision(tmp_path):
    import numpy as np
    from PIL import Image

    from reid_bench.data.base import Sample
    from reid_bench.engine.embed import make_embedder
    from reid_bench.engine.recipe import InputRecipe

    seen = []

    class Net(nn.Module):
        def forward(self, x):
            seen.append((torch.is_autocast_enabled("cpu"),
                         x.is_contiguous(memory_format=torch.channels_last)))
            return x.mean(dim=(2, 3))

    samples = []
    for i in range(2):
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(np.full((32, 16, 3), 40 * i, np.uint8)).save(path)
        samples.append(Sample(path=str(path), pid=i, camid=0))
    net = Net()
    acc = resolve(AccelOptions(precision="bf16", channels_last=True), "cpu")
    out = make_embedder(net, net, InputRecipe(height=32, width=16), accel=acc)(samples)
    assert out.dtype == torch.float32 and out.shape == (2, 3)
    assert seen and all(s == (True, True) for s in seen)
    seen.clear()
    make_embedder(net, net, InputRecipe(height=32, width=16))(samples)  # default: plain fp32
    assert seen and all(s == (False, False) for s in seen)
