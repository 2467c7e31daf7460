"""IDE: the ID-discriminative embedding baseline (Zheng et al., "Person re-identification: past,
present and future", 2016) — an ImageNet backbone fine-tuned as an identity classifier.

Verif-Identif Table II rows "(I)" are this model: the backbone's final FC is replaced by a new
classifier over the training identities (Sec. III-C: a 1×1 conv = a linear layer on the 1×1
descriptor, no ReLU after it), dropout before it (Sec. III-F), softmax cross-entropy. At test the
descriptor f is the backbone's final activation (pooled res5 for ResNet-50, fc7 for
VGG16/CaffeNet).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..method import CellContext, Method
from ..registry import METHODS
from ..train import train_stage
from ._common import (StandardRecipe, backbone_and_head_groups, shuffled_loader, to_device,
                      train_image_dataset)
from .backbones import build_backbone


class IDEParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    backbone: Literal["resnet50", "vgg16", "caffenet"] = "resnet50"
    dropout: float = Field(0.5, ge=0, lt=1)


class IDENet(nn.Module):
    """backbone → f → dropout → linear classifier. ``forward`` returns logits in training mode
    and the descriptor f in eval mode."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(backbone.feature_dim, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)
        if not self.training:
            return f
        return self.classifier(self.dropout(f))


@METHODS.register("ide")
class IDE(Method):
    Params = IDEParams
    Recipe = StandardRecipe

    def build(self, params: IDEParams, recipe: StandardRecipe, num_classes: int) -> IDENet:
        bb = build_backbone(params.backbone, width=recipe.backbone.width,
                            pretrained=recipe.backbone.pretrained)
        return IDENet(bb, num_classes, params.dropout)

    def fit(self, params: IDEParams, recipe: StandardRecipe, ctx: CellContext) -> IDENet:
        ds = train_image_dataset(ctx, recipe.input)
        model = self.build(params, recipe, ds.num_classes).to(ctx.device)
        loader = shuffled_loader(ds, recipe.train.batch_size, ctx)

        def step(batch):
            x, y = to_device(batch[:2], ctx.device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            acc = (logits.argmax(1) == y).float().mean()
            return loss, {"acc": float(acc)}

        train_stage(model, loader, step, recipe.train, device=ctx.device, stage="ide",
                    groups=backbone_and_head_groups(model.backbone, model,
                                                    recipe.train.backbone_lr_mult),
                    checkpoint=ctx.work_dir / "ide.ckpt", checkpoint_every=ctx.checkpoint_every,
                    log=ctx.log)
        return model
