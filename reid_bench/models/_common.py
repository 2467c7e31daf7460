"""Pieces several methods share: the standard recipe shape, loaders and parameter groups.

(Leading underscore: the registry does not import this as a method module.)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.samplers import make_loader
from ..data.torch_dataset import ImageDataset
from ..data.transforms import build_transform
from ..method import CellContext
from ..recipe import BackboneRecipe, InputRecipe, OptimRecipe
from ..strict import Strict


class StandardRecipe(Strict):
    """One-stage recipe: input pipeline, backbone weights/width, one optimiser stage."""

    input: InputRecipe = InputRecipe()
    backbone: BackboneRecipe = BackboneRecipe()
    train: OptimRecipe = OptimRecipe()


def train_image_dataset(ctx: CellContext, inp: InputRecipe) -> ImageDataset:
    """The training split with the train-time transform and contiguous 0-based labels."""
    # The runner puts the backbone's name in extras: the weights it starts from own the
    # input's channel order, scale and mean/std.
    return ImageDataset(ctx.dataset.train, build_transform(inp, train=True,
                                                          mean_image=ctx.extras.get("mean_image"),
                                                          weights=ctx.extras.get("weights",
                                                                                 "resnet50")),
                        relabel=True)


def shuffled_loader(ds, batch_size: int, ctx: CellContext, drop_last: bool = True):
    """Seeded shuffling loader over ``ds``; keeps the last partial batch when the split is
    smaller than one batch (tiny smoke datasets)."""
    drop = drop_last and len(ds) >= batch_size
    return make_loader(ds, batch_size, shuffle=True, seed=ctx.seed, num_workers=ctx.num_workers,
                       pin_memory=ctx.device.type == "cuda", drop_last=drop)


def backbone_and_head_groups(backbone: nn.Module, model: nn.Module,
                             backbone_mult: float) -> list[tuple[Iterable[nn.Parameter], float]]:
    """Parameter groups: pretrained backbone at ``backbone_mult`` × lr, everything else × 1."""
    bb = {id(p) for p in backbone.parameters()}
    head = [p for p in model.parameters() if id(p) not in bb]
    return [(list(backbone.parameters()), backbone_mult), (head, 1.0)]


def to_device(batch, device: torch.device):
    return [b.to(device, non_blocking=True) if torch.is_tensor(b) else b for b in batch]


class ClassifierNet(nn.Module):
    """backbone → f → dropout → linear identity classifier (a 1×1 conv on the 1×1 descriptor).
    Training mode returns logits; eval mode returns the descriptor f. The IDE baseline, and the
    LEDF identification network on holistic summing maps (LEDF Sec. 3.3)."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)
        return f if not self.training else self.classifier(self.dropout(f))


def softmax_step(model: nn.Module, device: torch.device):
    """The ``step`` of a plain identity-classification stage: cross-entropy of ``model``'s
    logits, with training accuracy as a logged scalar."""

    def step(batch):
        x, y = to_device(batch[:2], device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return loss, {"acc": float((logits.argmax(1) == y).float().mean())}

    return step
