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

from pydantic import Field

from ..core.registry import METHODS
from ..core.strict import Strict
from ..engine.method import CellContext, Method
from ..engine.train import train_stage
from ._common import (
    ClassifierNet,
    StandardRecipe,
    backbone_and_head_groups,
    softmax_step,
    train_image_dataset,
    train_loader,
)
from .backbones import build_backbone


class IDEParams(Strict):
    backbone: Literal["resnet50", "vgg16", "caffenet"] = "resnet50"
    dropout: float = Field(0.5, ge=0, lt=1)


# The IDE network is the shared classifier net: backbone → f → dropout → linear.
IDENet = ClassifierNet


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
        loader = train_loader(ds, recipe.train.batch_size, ctx)

        train_stage(model, loader, softmax_step(model, ctx.device), recipe.train,
                    device=ctx.device, stage="ide",
                    groups=backbone_and_head_groups(model.backbone, model,
                                                    recipe.train.backbone_lr_mult),
                    checkpoint=ctx.work_dir / "ide.ckpt", checkpoint_every=ctx.checkpoint_every)
        return model
