"""Image → tensor pipelines built from an ``InputRecipe`` and the input the backbone's
pretrained weights expect, and the mean colour used by the ``normalize: mean_image`` option."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..engine.recipe import InputRecipe
from .base import Sample

# torchvision/timm ImageNet statistics (RGB in [0, 1]; timm.data.IMAGENET_DEFAULT_MEAN/STD, a
# test checks they agree), for code that feeds a ResNet-50 maps rather than images (LEDF);
# image pipelines take theirs from the weights (``normalize_step``). Written out, not imported:
# importing timm costs seconds, and every dataset module loads this one.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_step(inp: InputRecipe, mean_colour: tuple[float, float, float] | None = None,
                   backbone: str = "resnet50"):
    """The step after ``ToTensor`` that makes the tensor the backbone's weights expect
    (``reid_bench.weights.input_preprocess``): channel order, scale, then ``inp.normalize``'s
    mean/std — the weights' ImageNet ones ("imagenet"), the training mean colour ``mean_colour``
    (RGB in [0, 1]) in the weights' order and scale ("mean_image"), or none ("none").
    ``backbone`` names the pretrained weights."""
    from ..weights import input_preprocess

    return input_preprocess(backbone, inp.normalize, mean_colour)


def build_transform(inp: InputRecipe, train: bool,
                    mean_colour: tuple[float, float, float] | None = None,
                    backbone: str = "resnet50"):
    """A torchvision transform taking an RGB PIL image to a float C×H×W tensor, as the
    ``InputRecipe`` docstring specifies.

    Train: Resize(``resize`` or (height, width)) → Pad(``pad``, zeros) → RandomCrop(height,
    width) if ``random_crop`` → RandomHorizontalFlip(0.5) if ``flip`` → ToTensor → Normalize →
    RandomErasing(p=``random_erasing``). Without ``random_crop``, a resize/pad that does not
    already give height×width is followed by a CenterCrop so train tensors always have the
    recipe's size. Random erasing runs after normalisation and fills with 0, i.e. with the
    normalisation mean colour (the weights' mean for "imagenet", the training mean colour for
    "mean_image", black for "none").
    Test: Resize(``resize``) → CenterCrop(height, width) if ``test_center_crop``, else
    Resize(height, width) → ToTensor → Normalize; with ``test_full_size`` no resize.

    "Normalize" is ``normalize_step``: the input the pretrained weights of ``backbone``
    expect, e.g. BGR in 0..255 minus the mean for CaffeNet.
    ``mean_colour``: RGB mean in [0, 1] (``compute_mean_colour``; ``data.preprocess``),
    required for "mean_image".
    """
    from torchvision import transforms as T

    size = (inp.height, inp.width)
    steps: list = []
    if train:
        first = tuple(inp.resize) if inp.resize is not None else size
        steps.append(T.Resize(first))
        if inp.pad:
            steps.append(T.Pad(inp.pad, fill=0))
        if inp.random_crop:
            steps.append(T.RandomCrop(size))
        elif (first[0] + 2 * inp.pad, first[1] + 2 * inp.pad) != size:
            steps.append(T.CenterCrop(size))
        if inp.flip:
            steps.append(T.RandomHorizontalFlip(0.5))
    elif inp.test_full_size:
        pass
    elif inp.test_center_crop and inp.resize is not None:
        steps += [T.Resize(tuple(inp.resize)), T.CenterCrop(size)]
    else:
        steps.append(T.Resize(size))
    steps.append(T.ToTensor())
    steps.append(normalize_step(inp, mean_colour, backbone))
    if train and inp.random_erasing > 0:
        steps.append(T.RandomErasing(p=inp.random_erasing, value=0))
    return T.Compose(steps)


def compute_mean_colour(samples: Sequence[Sample], max_images: int = 2000) -> tuple[float, float, float]:
    """Mean RGB colour in [0, 1] over ``samples`` (at most ``max_images`` of them, evenly spaced
    so the result is deterministic), each image weighted by its pixel count. Crops to
    ``Sample.bbox`` like the training loader."""
    from .torch_dataset import open_image

    if not samples:
        raise ValueError("compute_mean_colour needs at least one sample")
    idx = np.linspace(0, len(samples) - 1, min(max_images, len(samples))).round().astype(int)
    total = np.zeros(3)
    count = 0
    for i in np.unique(idx):
        arr = np.asarray(open_image(samples[i]), dtype=np.float64)
        total += arr.reshape(-1, 3).sum(0)
        count += arr.shape[0] * arr.shape[1]
    return tuple(float(x) for x in total / count / 255.0)
