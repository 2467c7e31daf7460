"""The ImageNet weight sets the papers start from, and the input each of them expects.

One ``WeightSet`` per backbone (its name is the backbone's name): where the weights come from
(timm, torchvision, or the BVLC Caffe model converted by ``reid-bench weights convert``), which
state-dict keys are the ImageNet classifier head that our methods replace, and the
preprocessing the weights were trained with. The preprocessing is read from the libraries'
own metadata (timm's ``pretrained_cfg``, torchvision's weight transforms), never retyped; only
CaffeNet, which no library ships, carries its constants here with their source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache

import torch

from ..core.errors import RegistryError


@dataclass(frozen=True)
class Preprocess:
    """What a network's input tensor is, given an RGB image with pixels ``p`` in 0..255:
    ``x[c] = (p[channels[c]] / 255 · scale − mean[c]) / std[c]``, channels in ``order``.
    ``mean``/``std`` are in the network's channel order and scale."""

    order: str  # "RGB" or "BGR"
    scale: float  # 1.0: pixels in [0, 1] (torchvision/timm); 255.0: Caffe's 0..255
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    source: str = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """RGB float tensor in [0, 1] (C×H×W or N×C×H×W, ``ToTensor``'s output) → network
        input."""
        if self.order == "BGR":
            x = x.flip(-3)
        if self.scale != 1.0:
            x = x * self.scale
        if self.mean is not None:
            x = x - torch.tensor(self.mean, dtype=x.dtype).view(3, 1, 1)
        if self.std is not None and any(s != 1.0 for s in self.std):
            x = x / torch.tensor(self.std, dtype=x.dtype).view(3, 1, 1)
        return x

    def with_mean_colour(self, rgb01: tuple[float, float, float]) -> Preprocess:
        """The same pipeline subtracting ``rgb01`` (a mean colour, RGB in [0, 1]) instead of
        the weights' own mean: converted to this pipeline's channel order and scale."""
        mean = tuple(rgb01[::-1]) if self.order == "BGR" else tuple(rgb01)
        return replace(self, mean=tuple(float(m) * self.scale for m in mean),
                       source=f"{self.source}; mean = training-set mean colour")

    def without_mean(self) -> Preprocess:
        """Channel order and scale only (``normalize: none``)."""
        return replace(self, mean=None, std=None, source=f"{self.source}; no normalisation")

    def describe(self) -> str:
        def fmt(v):
            return "-" if v is None else "(" + ", ".join(f"{x:.4g}" for x in v) + ")"

        return (f"{self.order}, 0..{self.scale:g}, mean {fmt(self.mean)}, std {fmt(self.std)}")


@dataclass(frozen=True)
class WeightSet:
    """ImageNet weights of one backbone."""

    name: str  # = the backbone name
    title: str
    library: str  # "timm" | "torchvision" | "bvlc"
    tag: str  # timm model tag, torchvision weights enum, or the BVLC model name
    head: tuple[str, ...]  # state-dict key prefixes of the ImageNet classifier we replace
    preprocess: Callable[[], Preprocess] = field(compare=False, repr=False)
    # File name the library caches the weights under (torchvision's carries its sha256 prefix).
    library_file: str | None = None
    sha256_prefix: str | None = None

    @property
    def file_names(self) -> tuple[str, ...]:
        """Names looked up in ``$REID_BENCH_WEIGHTS_DIR`` (first found wins)."""
        names = [f"{self.name}.safetensors", f"{self.name}.pth"]
        if self.library_file:
            names.append(self.library_file)
        return tuple(names)


@cache
def _timm_cfg(tag: str):
    import timm

    return timm.models.get_pretrained_cfg(tag)


@cache
def _tv_weights(tag: str):
    from torchvision.models import get_weight

    return get_weight(tag)


def _timm_preprocess(tag: str) -> Preprocess:
    cfg = _timm_cfg(tag)
    return Preprocess("RGB", 1.0, tuple(cfg.mean), tuple(cfg.std), f"timm {tag} pretrained_cfg")


def _tv_preprocess(tag: str) -> Preprocess:
    t = _tv_weights(tag).transforms()
    return Preprocess("RGB", 1.0, tuple(t.mean), tuple(t.std), f"torchvision {tag}.transforms()")


# BVLC CaffeNet was trained on BGR images in 0..255 minus the ImageNet mean image
# (data/ilsvrc12/imagenet_mean.binaryproto). Its per-channel mean, B, G, R, is the one Caffe's
# own examples subtract (examples/00-classification.ipynb: the mean of
# python/caffe/imagenet/ilsvrc_2012_mean.npy). No std: Caffe does not divide.
CAFFENET_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
BVLC_CAFFENET_URL = "http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel"
BVLC_CAFFENET_SHA1 = "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46"  # models/bvlc_reference_caffenet/readme.md


def _caffenet_preprocess() -> Preprocess:
    return Preprocess("BGR", 255.0, CAFFENET_MEAN_BGR, (1.0, 1.0, 1.0),
                      "BVLC CaffeNet (Caffe ImageNet mean, BGR 0..255)")


def _resnet50() -> WeightSet:
    tag = "resnet50.tv_in1k"  # torchvision's original ImageNet ResNet-50, as timm names it
    cfg = _timm_cfg(tag)
    url = cfg.url or ""
    file = url.rsplit("/", 1)[-1] or None
    prefix = file.rsplit("-", 1)[-1].split(".")[0] if file and "-" in file else None
    return WeightSet("resnet50", "ResNet-50 (He et al. 2016), torchvision ImageNet weights",
                     "timm", tag, head=(f"{cfg.classifier}.",),
                     preprocess=lambda: _timm_preprocess(tag), library_file=file,
                     sha256_prefix=prefix)


def _vgg16() -> WeightSet:
    tag = "VGG16_Weights.IMAGENET1K_V1"
    file = _tv_weights(tag).url.rsplit("/", 1)[-1]
    return WeightSet("vgg16", "VGG16 (Simonyan & Zisserman 2015), torchvision ImageNet weights",
                     "torchvision", tag, head=("classifier.6.",),
                     preprocess=lambda: _tv_preprocess(tag), library_file=file,
                     sha256_prefix=file.rsplit("-", 1)[-1].split(".")[0])


def _caffenet() -> WeightSet:
    return WeightSet("caffenet", "CaffeNet (BVLC reference), converted from the Caffe model",
                     "bvlc", "bvlc_reference_caffenet", head=("fc8.",),
                     preprocess=_caffenet_preprocess)


_BUILDERS: dict[str, Callable[[], WeightSet]] = {
    "caffenet": _caffenet, "vgg16": _vgg16, "resnet50": _resnet50}


def names() -> list[str]:
    return list(_BUILDERS)


@cache
def get(name: str) -> WeightSet:
    """The weight set of backbone ``name``."""
    if name not in _BUILDERS:
        raise RegistryError(f"unknown weights {name!r}; known: {', '.join(_BUILDERS)}")
    return _BUILDERS[name]()


def input_preprocess(name: str, normalize: str,
                     mean_colour: tuple[float, float, float] | None = None) -> Preprocess:
    """The preprocessing for backbone ``name`` under the recipe's ``normalize`` option:
    "imagenet" = exactly what the weights expect; "mean_image" = the same channel order, scale
    and std, subtracting the training set's mean colour (``mean_colour``, RGB in [0, 1]) instead
    of the ImageNet mean; "none" = channel order and scale only."""
    pre = get(name).preprocess()
    if normalize == "imagenet":
        return pre
    if normalize == "mean_image":
        if mean_colour is None:
            raise ValueError("normalize='mean_image' needs the training set's mean colour "
                             "(compute_mean_colour(train_samples))")
        return pre.with_mean_colour(mean_colour)
    if normalize == "none":
        return pre.without_mean()
    raise ValueError(f"unknown normalize {normalize!r}; allowed: imagenet, mean_image, none")
