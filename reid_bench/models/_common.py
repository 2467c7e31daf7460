"""Pieces several methods share: the recipe shapes, loaders, parameter groups, the identity
classifier and its softmax step, and feeding a feature map to an ImageNet network.

(Leading underscore: the registry does not import this as a method module.)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.strict import Strict
from ..data.samplers import make_loader
from ..data.torch_dataset import ImageDataset
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform
from ..engine.method import CellContext
from ..engine.recipe import BackboneRecipe, InputRecipe, OptimRecipe


class ModelRecipe(Strict):
    """What every method's recipe starts with: the input pipeline and the backbone's
    weights/width (methods add their optimiser stages and heads)."""

    input: InputRecipe = InputRecipe()
    backbone: BackboneRecipe = BackboneRecipe()


class StandardRecipe(ModelRecipe):
    """One-stage recipe: input pipeline, backbone weights/width, one optimiser stage."""

    train: OptimRecipe = OptimRecipe()


def train_image_dataset(ctx: CellContext, inp: InputRecipe) -> ImageDataset:
    """The training split with the train-time transform and contiguous 0-based labels."""
    # The backbone whose weights the model starts from owns the input's channel order, scale
    # and mean/std (the runner resolved it: ctx.preprocessing).
    pre = ctx.preprocessing
    return ImageDataset(ctx.dataset.train, build_transform(inp, train=True,
                                                          mean_colour=pre.mean_colour,
                                                          backbone=pre.backbone),
                        relabel=True)


def train_loader(ds, batch_size: int, ctx: CellContext, *, sampler=None, batch_sampler=None):
    """A training stage's seeded loader over ``ds`` with the cell's workers and pinning:
    shuffled, or in the order of ``sampler`` (e.g. pairs) or ``batch_sampler`` (e.g. P×K). The
    last partial batch is dropped unless the epoch is smaller than one batch (tiny smoke
    datasets)."""
    drop = batch_sampler is None and len(sampler if sampler is not None else ds) >= batch_size
    return make_loader(ds, batch_size, shuffle=sampler is None and batch_sampler is None,
                       seed=ctx.seed, num_workers=ctx.num_workers,
                       pin_memory=ctx.device.type == "cuda", drop_last=drop,
                       sampler=sampler, batch_sampler=batch_sampler)


def backbone_and_head_groups(backbone: nn.Module, model: nn.Module,
                             backbone_mult: float) -> list[tuple[Iterable[nn.Parameter], float]]:
    """Parameter groups: pretrained backbone at ``backbone_mult`` × lr, everything else × 1."""
    bb = {id(p) for p in backbone.parameters()}
    head = [p for p in model.parameters() if id(p) not in bb]
    return [(list(backbone.parameters()), backbone_mult), (head, 1.0)]


def to_device(batch, device: torch.device):
    return [b.to(device, non_blocking=True) if torch.is_tensor(b) else b for b in batch]


def init_classifier(layer: nn.Linear | nn.Conv2d) -> nn.Linear | nn.Conv2d:
    """``layer`` (a fully connected layer or a 1×1 convolution used as one) initialised as the
    papers' identity classifiers: weights ~ N(0, 0.001²), zero bias. Returns ``layer``."""
    nn.init.normal_(layer.weight, std=0.001)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def classifier(dim: int, num_classes: int) -> nn.Linear:
    """A ``dim`` → ``num_classes`` identity classifier (``init_classifier``)."""
    return init_classifier(nn.Linear(dim, num_classes))


def ce_and_acc(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Softmax cross-entropy of ``logits`` against class indices ``target``, and the batch's
    top-1 accuracy (a logged scalar, no gradient)."""
    acc = float((logits.detach().argmax(1) == target).float().mean())
    return F.cross_entropy(logits, target), acc


class ClassifierNet(nn.Module):
    """backbone → f → dropout → linear identity classifier (a 1×1 conv on the 1×1 descriptor).
    Training mode returns logits; eval mode returns the descriptor f. The IDE baseline, and the
    LEDF identification network on holistic summing maps (LEDF Sec. 3.3)."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier(backbone.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)
        return f if not self.training else self.classifier(self.dropout(f))


def softmax_step(model: nn.Module, device: torch.device):
    """The ``step`` of a plain identity-classification stage: cross-entropy of ``model``'s
    logits, with training accuracy as a logged scalar."""

    def step(batch):
        x, y = to_device(batch[:2], device)
        loss, acc = ce_and_acc(model(x), y)
        return loss, {"acc": acc}

    return step


def map_to_image(z: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A one-channel map (B × 1 × H × W) → a 3-channel input for an ImageNet ResNet-50: each
    map min-max scaled to [0, 1], replicated to RGB, resized to ``size`` and normalised with
    the ImageNet mean/std.

    LEDF feeds its holistic summing maps to a MatConvNet ResNet-50 like images without saying
    how they are scaled; this scaling (as the grey images of its Fig. 4) is assumed."""
    b = z.shape[0]
    flat = z.reshape(b, -1)
    lo, hi = flat.min(1, keepdim=True)[0], flat.max(1, keepdim=True)[0]
    z = ((flat - lo) / (hi - lo).clamp_min(1e-12)).reshape_as(z)
    z = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
    mean = z.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = z.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (z.expand(-1, 3, -1, -1) - mean) / std
