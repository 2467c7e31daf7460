"""ImageNet backbones of the five papers, with a width multiplier for the smoke tier.

``build_backbone(name, width, pretrained)`` returns a module whose ``forward(x)`` gives the
descriptor the papers call the final activation ``f`` (N × ``feature_dim``) and which exposes its
stages for methods that tap or mask intermediate maps. ``width`` < 1 keeps the topology (same
layers, kernels, strides) and scales channel counts; pretrained weights only load at width 1.

Pretrained weights (``reid_bench.weights``): ``"imagenet"`` loads the backbone's weight set —
timm's ``resnet50.tv_in1k`` (torchvision's original ImageNet ResNet-50), torchvision's VGG16
``IMAGENET1K_V1``, the BVLC CaffeNet converted by ``reid-bench weights convert`` — found in
``--weights``/``$REID_BENCH_WEIGHTS_DIR``/the library caches or downloaded; a path loads that
file; ``"none"`` is random init (smoke and tests). Loading is strict: every key must fit
except the ImageNet classifier head the method replaces. The input each weight set expects
(channel order, scale, mean, std) is ``reid_bench.weights.input_preprocess``.
"""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch
from torch import nn

from ..weights import load_pretrained

BackboneBuilder = Callable[..., nn.Module]
BACKBONES: dict[str, BackboneBuilder] = {}


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    def deco(fn: BackboneBuilder) -> BackboneBuilder:
        if name in BACKBONES:
            raise ValueError(f"duplicate backbone {name!r}")
        BACKBONES[name] = fn
        return fn

    return deco


def build_backbone(name: str, *, width: float = 1.0, pretrained: str = "none",
                   **kwargs) -> nn.Module:
    """Build backbone ``name`` (one of ``BACKBONES``) at channel multiplier ``width``."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(sorted(BACKBONES))}")
    if pretrained not in ("none", "imagenet") and width != 1.0:
        raise ValueError("pretrained weights need width 1.0 (the paper's network)")
    if pretrained == "imagenet" and width != 1.0:
        raise ValueError("ImageNet weights need width 1.0; the smoke tier uses pretrained: none")
    return BACKBONES[name](width=width, pretrained=pretrained, **kwargs)


def _scaled(c: int, width: float) -> int:
    return max(8, int(round(c * width)))


class ResNetBackbone(nn.Module):
    """ResNet-50 split into the stages the papers name (Caffe naming in brackets):
    ``stem`` (conv1+bn+relu), ``pool1`` (max-pool), ``res2``..``res5`` (layer1..layer4).
    ``forward`` = global average pool of res5 → f (2048·width)."""

    stage_names = ("stem", "pool1", "res2", "res3", "res4", "res5")

    def __init__(self, net: nn.Module, last_stride: int = 2):
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.act1)
        self.pool1 = net.maxpool
        self.res2, self.res3, self.res4, self.res5 = net.layer1, net.layer2, net.layer3, net.layer4
        if last_stride != 2:
            # Re-ID practice (and Deep-Person/FMN use of larger maps): stride 1 in res5.
            block = self.res5[0]
            block.conv2.stride = (last_stride, last_stride)
            if block.downsample is not None:
                block.downsample[0].stride = (last_stride, last_stride)
        self.stage_channels = {
            "stem": net.conv1.out_channels, "pool1": net.conv1.out_channels,
            "res2": _out_ch(net.layer1), "res3": _out_ch(net.layer2),
            "res4": _out_ch(net.layer3), "res5": _out_ch(net.layer4),
        }
        self.feature_dim = self.stage_channels["res5"]

    def stage(self, name: str) -> nn.Module:
        return getattr(self, name)

    def forward_from(self, x: torch.Tensor, start: str | None = None,
                     stop: str | None = None) -> torch.Tensor:
        """Run stages after ``start`` (None: from the image) up to and including ``stop``."""
        names = self.stage_names
        i = 0 if start is None else names.index(start) + 1
        j = len(names) if stop is None else names.index(stop) + 1
        for n in names[i:j]:
            x = getattr(self, n)(x)
        return x

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))


def _out_ch(layer: nn.Sequential) -> int:
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


@register_backbone("resnet50")
def resnet50(width: float = 1.0, pretrained: str = "none", last_stride: int = 2) -> ResNetBackbone:
    """ResNet-50 (He et al. 2016) through timm; width scales every stage (and the stem)."""
    channels = tuple(_scaled(c, width) for c in (64, 128, 256, 512))
    kw = dict(num_classes=0, global_pool="", channels=channels, stem_width=_scaled(64, width))
    # timm's ResNet uses torchvision's key names, so both libraries' files load into it.
    net = timm.create_model("resnet50", pretrained=False, **kw)
    if width != 1.0:
        _narrow_stem(net, _scaled(64, width))
    load_pretrained(net, "resnet50", pretrained)
    return ResNetBackbone(net, last_stride=last_stride)


def _narrow_stem(net: nn.Module, stem: int) -> None:
    """timm's default 7×7 stem ignores ``stem_width`` (it is fixed at 64), so at width < 1 we
    rebuild conv1/bn1 and the first block's input convolutions at ``stem`` channels: same
    kernels and strides, every stage scaled alike."""
    net.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(stem)
    block = net.layer1[0]
    block.conv1 = nn.Conv2d(stem, block.conv1.out_channels, 1, bias=False)
    out = block.conv3.out_channels
    # At full width res2's first block projects 64 → 256; timm saw 64 → 4·16 and skipped it.
    block.downsample = nn.Sequential(nn.Conv2d(stem, out, 1, bias=False), nn.BatchNorm2d(out))


class FCBackbone(nn.Module):
    """Conv trunk + fc6/fc7 (VGG16, CaffeNet): ``forward`` gives the fc7 activation f
    (4096·width), the descriptor Verif-Identif uses for these nets."""

    def __init__(self, features: nn.Module, pool: nn.Module, fc: nn.Module, feature_dim: int,
                 map_channels: int):
        super().__init__()
        self.features, self.pool, self.fc = features, pool, fc
        self.feature_dim = feature_dim
        self.map_channels = map_channels

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@register_backbone("vgg16")
def vgg16(width: float = 1.0, pretrained: str = "none") -> FCBackbone:
    """VGG16 (Simonyan & Zisserman 2015), torchvision layer layout, final FC (fc8) removed and
    with it the dropout after fc7: the methods insert their own single dropout before the new
    classifier (Verif-Identif Sec. III-F), so fc7 is dropped once, not twice. fc6's dropout
    stays, as in the ImageNet network."""
    from torchvision.models import vgg as tvvgg

    cfg = [v if v == "M" else _scaled(v, width) for v in tvvgg.cfgs["D"]]
    fc_dim = _scaled(4096, width)
    net = tvvgg.VGG(tvvgg.make_layers(cfg, batch_norm=False), num_classes=1000, init_weights=True)
    c_last = cfg[-2]
    # Same indices as torchvision's classifier (fc6 = classifier.0, fc7 = classifier.3), so its
    # ImageNet file loads with only fc8 (classifier.6) dropped.
    net.classifier = nn.Sequential(
        nn.Linear(c_last * 7 * 7, fc_dim), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(fc_dim, fc_dim), nn.ReLU(True),
    )
    load_pretrained(net, "vgg16", pretrained)
    return FCBackbone(net.features, net.avgpool, net.classifier, fc_dim, c_last)


class _LRN(nn.Module):
    """Caffe LocalResponseNormalization (local_size 5, alpha 1e-4, beta 0.75)."""

    def __init__(self):
        super().__init__()
        self.lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)

    def forward(self, x):
        return self.lrn(x)


@register_backbone("caffenet")
def caffenet(width: float = 1.0, pretrained: str = "none") -> FCBackbone:
    """CaffeNet (BVLC reference, Jia et al. 2014): AlexNet with pooling before normalisation,
    grouped conv2/4/5, 227×227 input, fc6/fc7 4096. Written to the original layer layout
    (torchvision's AlexNet differs: no LRN, no groups, other widths). ImageNet weights: the
    BVLC model converted by ``reid-bench weights convert caffenet`` (``weights/caffe.py`` maps
    conv1..5 → features.0/4/8/10/12, fc6 → fc.0, fc7 → fc.3; fc8 is dropped)."""
    c = [_scaled(n, width) for n in (96, 256, 384, 384, 256)]
    c = [x + x % 2 for x in c]  # grouped convs need even channels
    fc_dim = _scaled(4096, width)
    features = nn.Sequential(
        nn.Conv2d(3, c[0], 11, stride=4), nn.ReLU(True),
        nn.MaxPool2d(3, 2, ceil_mode=True), _LRN(),
        nn.Conv2d(c[0], c[1], 5, padding=2, groups=2), nn.ReLU(True),
        nn.MaxPool2d(3, 2, ceil_mode=True), _LRN(),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(True),
        nn.Conv2d(c[2], c[3], 3, padding=1, groups=2), nn.ReLU(True),
        nn.Conv2d(c[3], c[4], 3, padding=1, groups=2), nn.ReLU(True),
        nn.MaxPool2d(3, 2, ceil_mode=True),
    )
    # pool5 is 6×6 at 227×227; adaptive pooling keeps fc6's shape for other input sizes.
    pool = nn.AdaptiveMaxPool2d((6, 6))
    fc = nn.Sequential(nn.Linear(c[4] * 36, fc_dim), nn.ReLU(True), nn.Dropout(0.5),
                       nn.Linear(fc_dim, fc_dim), nn.ReLU(True))
    net = FCBackbone(features, pool, fc, fc_dim, c[4])
    load_pretrained(net, "caffenet", pretrained)
    return net
