"""Typed training-recipe pieces shared by every method.

A spec's ``recipe:`` block is validated (after its provenance annotations are stripped) into a
method's own recipe model, which composes these pieces. Deeper code receives these objects, never
the spec.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from ..core.strict import Strict


class FixedSizeInputRecipe(Strict):
    """How images become tensors, every test image at one size (``InputRecipe`` without
    ``test_full_size``: for networks whose layers fix the input size, e.g. FMN's mask).

    Train: resize to ``resize`` (or straight to ``height``×``width`` when None), optional
    zero-pad ``pad`` pixels, random crop ``height``×``width`` when ``random_crop``, horizontal flip
    with p=0.5 when ``flip``, normalise, then random erasing with probability ``random_erasing``.
    Test: resize to ``resize`` then centre-crop when ``test_center_crop``, else resize straight to
    ``height``×``width``; normalise.
    """

    height: int = Field(256, gt=0)
    width: int = Field(128, gt=0)
    resize: tuple[int, int] | None = None
    pad: int = Field(0, ge=0)
    random_crop: bool = False
    flip: bool = True
    random_erasing: float = Field(0.0, ge=0.0, le=1.0)
    test_center_crop: bool = False
    # "imagenet": torchvision mean/std (pretrained backbones); "mean_image": subtract the mean
    # colour of the training images (Verif-Identif III-F, MatConvNet style); "none".
    normalize: Literal["imagenet", "mean_image", "none"] = "imagenet"

    @model_validator(mode="after")
    def _crop_needs_room(self) -> FixedSizeInputRecipe:
        if self.random_crop and self.resize is not None:
            rh, rw = self.resize
            if rh + 2 * self.pad < self.height or rw + 2 * self.pad < self.width:
                raise ValueError(f"random_crop {self.height}x{self.width} does not fit in resize "
                                 f"{rh}x{rw} (+pad {self.pad})")
        return self


class InputRecipe(FixedSizeInputRecipe):
    """How images become tensors (``FixedSizeInputRecipe``); with ``test_full_size`` test
    images are not resized at all."""

    # Test images at their own size (image retrieval, Verif-Identif Sec. IV-C): no test resize;
    # the embedder then runs one image per batch.
    test_full_size: bool = False


class GradClip(Strict):
    """Gradient clipping, applied once per optimisation step by ``train_stage``: after the
    gradients are averaged across ranks and unscaled (fp16 loss scaling), before the optimiser
    step. ``per_parameter``: each parameter tensor's gradient is rescaled to L2 norm at most
    ``max_norm`` on its own; otherwise the norm of all gradients together
    (``torch.nn.utils.clip_grad_norm_``)."""

    max_norm: float = Field(gt=0)
    per_parameter: bool = False


class OptimRecipe(Strict):
    """One training stage: optimizer, step schedule, epochs and batch size.

    The learning rate is multiplied by ``gamma`` at each epoch in ``lr_steps`` (0-based epoch
    index at which the new rate starts), after ``warmup_epochs`` of linear warm-up.
    """

    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.01, gt=0, le=10)  # above 10: a typo (1e308), not a learning rate
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0, le=1)
    epochs: int = Field(60, gt=0)
    batch_size: int = Field(32, gt=0)
    lr_steps: tuple[int, ...] = ()
    gamma: float = Field(0.1, gt=0, le=1)
    warmup_epochs: int = Field(0, ge=0)
    # Learning-rate multiplier for pretrained backbone parameters (new heads use 1.0).
    backbone_lr_mult: float = Field(1.0, ge=0, le=100)
    grad_clip: GradClip | None = None  # None: no clipping

    def unused_fields(self) -> frozenset[str]:
        """Fields these values make irrelevant: Adam has no momentum or Nesterov switch (its
        betas are torch's defaults), and ``gamma`` acts only at ``lr_steps``."""
        out = {"momentum", "nesterov"} if self.optimizer == "adam" else set()
        return frozenset(out | ({"gamma"} if not self.lr_steps else set()))

    def lr_at(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (0-based) for a parameter group with multiplier 1."""
        lr = self.lr * self.gamma ** sum(1 for s in self.lr_steps if epoch >= s)
        if self.warmup_epochs and epoch < self.warmup_epochs:
            lr *= (epoch + 1) / self.warmup_epochs
        return lr


class BackboneRecipe(Strict):
    """Which ImageNet weights to start from and how wide the network is.

    ``pretrained``: "imagenet" loads the library's ImageNet weights through its normal API
    (torchvision/timm download cache), a file path loads a local state dict, "none" = random
    init (smoke and tests). ``width``: channel multiplier (1.0 = the paper's network; smoke uses
    a quarter-width network of the same topology).
    """

    pretrained: str = "imagenet"
    width: float = Field(1.0, gt=0, le=1.0)


def recipe_leaves(cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted keys of every leaf field of a recipe model class: the fields that are not a
    (required) sub-model themselves; an optional sub-model (``grad_clip: GradClip | None``) is
    one leaf. The keys a spec traces (``reid_bench.spec.traced``)."""
    out: list[str] = []
    for name, f in cls.model_fields.items():
        sub = f.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out += recipe_leaves(sub, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out
