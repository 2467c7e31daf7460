"""Backbones against independent truth: the published parameter counts of the ImageNet nets
(without their 1000-way classifier), descriptor sizes, and that the smoke width scales every
stage (stem included) without changing the topology."""

import pytest
import torch

from reid_bench.models.backbones import build_backbone


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name, size, dim, params", [
    # torchvision resnet50: 25,557,032 incl. fc (2048·1000 + 1000)
    ("resnet50", (224, 224), 2048, 25_557_032 - 2_049_000),
    # torchvision vgg16: 138,357,544 incl. fc8 (4096·1000 + 1000)
    ("vgg16", (224, 224), 4096, 138_357_544 - 4_097_000),
    # BVLC CaffeNet: 60,965,224 incl. fc8
    ("caffenet", (227, 227), 4096, 60_965_224 - 4_097_000),
])
def test_full_width_matches_published_parameter_counts(name, size, dim, params):
    m = build_backbone(name).eval()
    assert n_params(m) == params
    with torch.no_grad():
        assert m(torch.randn(1, 3, *size)).shape == (1, dim)


def test_quarter_width_resnet_scales_every_stage():
    m = build_backbone("resnet50", width=0.25)
    assert m.stage_channels == {"stem": 16, "pool1": 16, "res2": 64, "res3": 128,
                                "res4": 256, "res5": 512}
    assert [len(m.stage(s)) for s in ("res2", "res3", "res4", "res5")] == [3, 4, 6, 3]
    x = torch.randn(2, 3, 64, 32)
    shapes = {}
    h = x
    for s in m.stage_names:
        h = m.stage(s)(h)
        shapes[s] = tuple(h.shape[1:])
    assert shapes == {"stem": (16, 32, 16), "pool1": (16, 16, 8), "res2": (64, 16, 8),
                      "res3": (128, 8, 4), "res4": (256, 4, 2), "res5": (512, 2, 1)}


def test_last_stride_one_doubles_res5_map():
    m = build_backbone("resnet50", width=0.25, last_stride=1)
    assert m.feature_map(torch.randn(1, 3, 64, 32)).shape[-2:] == (4, 2)


def test_pretrained_needs_full_width():
    with pytest.raises(ValueError, match="width 1.0"):
        build_backbone("resnet50", width=0.25, pretrained="imagenet")
    with pytest.raises(ValueError, match="width 1.0"):
        build_backbone("caffenet", width=0.5, pretrained="imagenet")
