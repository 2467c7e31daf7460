"""LEDF: local embedding deep features ("Local embedding deep features for person
re-identification in camera networks"; authors/venue not in the provided text, see
papers/ledf/README.md).

Two networks, trained one after the other (Sec. 3, Fig. 4):

1. **Verification network** (Sec. 3.2): a siamese ResNet-50 (shared weights) fed with pairs of
   *corresponding* horizontal regions of two images (region k of image a with region k of image
   b; similar when same identity, dissimilar otherwise, 1:1, Sec. 4). Each region is resized to
   224×224 (Sec. 4). The pooled descriptors f1, f2 meet in the square layer f' = (f1 − f2)²
   (Eq. 1), a fully connected layer maps f' to 2 logits, softmax cross-entropy (Eqs. 2–3).
2. **Summing maps** (Sec. 3.2–3.3): from the trained verification network, the local feature maps
   z^m_k of region k are read at the ninth convolution of ResNet-50's first block (Sec. 4); the
   local summing map is their average over the M maps (channels), Z_k = Σ_m z^m_k / M (Eq. 4),
   and the holistic summing map stacks the K local maps top to bottom, Z = [Z_1; …; Z_K] (Eq. 5).
3. **Identification network** (Sec. 3.3): a ResNet-50 classifier over the training identities
   (Eqs. 6–8) that takes the holistic summing map as its input image. At test the LEDF
   descriptor is its 2048-dim feature (the pooled activation feeding the N-way fully connected
   layer), ranked by Euclidean distance.

Table 3 baselines use the same identification network on other inputs: ``input: image`` is
ResNet-50 (O), the original images; ResNet-50 (W), the whole feature maps, is LEDF with K = 1
(the paper prints identical numbers for W and for K = 1 in Table 4).

"Ninth convolution of the first block": ResNet-50's first block (res2 / ``layer1``) has three
bottlenecks of three convolutions each (the projection shortcut is not counted), so the ninth is
``conv3`` of the third bottleneck (``res2c_branch2c`` in the MatConvNet/Caffe model the authors
used). ``tap: conv`` (default) reads that convolution's own output, before its batch norm, the
residual sum and the ReLU; ``tap: block`` reads the block output instead (after sum + ReLU).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..core.registry import METHODS
from ..core.strict import Strict
from ..engine.method import CellContext, Method
from ..engine.recipe import OptimRecipe
from ..engine.train import train_stage
from ..engine.trained import get_or_train
from ._common import (
    ClassifierNet,
    ModelRecipe,
    backbone_and_head_groups,
    ce_and_acc,
    map_to_image,
    softmax_step,
    to_device,
    train_image_dataset,
    train_loader,
)
from ._regions import crop_regions, split_regions
from ._sampling import RegionPairDataset, RegionPairSampler
from .backbones import ResNetBackbone, build_backbone

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Params and recipe


class LEDFParams(Strict):
    """Row-level switches.

    ``K``: number of horizontal regions per image (Sec. 3.3, Table 4; the paper's choice is 3).
    ``input``: what the identification network sees — ``summing_map`` (LEDF; with K = 1 this is
    Table 3's ResNet-50 (W)) or ``image`` (Table 3's ResNet-50 (O); K is then unused).
    ``tap``: where the local feature maps are read (see the module docstring).
    ``dropout``: before the identification classifier (the paper names none)."""

    K: int = Field(3, ge=1, le=16)
    input: Literal["summing_map", "image"] = "summing_map"
    tap: Literal["conv", "block"] = "conv"
    dropout: float = Field(0.0, ge=0, lt=1)


class SizeRecipe(Strict):
    """A tensor size (height × width) that an intermediate input is resized to."""

    height: int = Field(224, gt=0)
    width: int = Field(224, gt=0)


class LEDFRecipe(ModelRecipe):
    """``input``: the whole-image pipeline (train augmentation and test resize) before the
    image is divided into regions; ``region``: the size each region is resized to for the
    verification network (Sec. 4: 224×224); ``id_input``: the size the holistic summing map (or,
    for ``input: image``, the image) is resized to for the identification network;
    ``verification``/``identification``: the two training stages (Sec. 4); ``pair_ratio``:
    dissimilar pairs per similar pair (Sec. 4: 1:1).

    ``pair_epoch``: what one verification epoch is (the paper does not say). ``region_pairs``:
    every training image is an anchor once per region index, K·n region pairs, so a larger K
    also means K times more updates in "75 epochs". ``image_pairs``: n region pairs (a random
    n of those K·n each epoch), so every K gets the same number of updates.
    ``pair_batchnorm``: ``joint`` runs the pair as one stacked batch, so BatchNorm normalises
    both branches together; ``separate`` runs each branch as its own batch, as the paper's two
    weight-sharing MatConvNet CNNs do (statistics per branch)."""

    region: SizeRecipe = SizeRecipe()
    id_input: SizeRecipe = SizeRecipe()
    verification: OptimRecipe = OptimRecipe()
    identification: OptimRecipe = OptimRecipe()
    pair_ratio: float = Field(1.0, gt=0)
    pair_epoch: Literal["region_pairs", "image_pairs"] = "region_pairs"
    pair_batchnorm: Literal["joint", "separate"] = "joint"


# --------------------------------------------------------------------------------------------
# Regions and summing maps (Sec. 3.2–3.3)


def local_summing_map(feature_maps: torch.Tensor) -> torch.Tensor:
    """Eq. 4: Z_k = Σ_m z^m_k / M — the mean of the M local feature maps (channels) of one
    region. (B × M × h × w) → (B × 1 × h × w)."""
    return feature_maps.mean(dim=1, keepdim=True)


def holistic_summing_map(local_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Eq. 5: Z = [Z_1; Z_2; …; Z_K] — the local summing maps stacked top to bottom, in region
    order (``;`` is vertical concatenation). K × (B × 1 × h × w) → (B × 1 × K·h × w)."""
    return torch.cat(list(local_maps), dim=-2)


def ninth_conv(backbone: ResNetBackbone) -> nn.Conv2d:
    """The ninth convolution of ResNet-50's first block: ``conv3`` of res2's third bottleneck
    (res2 = 3 bottlenecks × conv1/conv2/conv3; the projection shortcut is not counted)."""
    return backbone.res2[-1].conv3


class LocalFeatureTrunk(nn.Module):
    """The part of a (trained verification) ResNet-50 up to the local-feature tap: stem, pool1
    and res2. ``forward(x)`` returns the local feature maps (B × M × H/4 × W/4), M = 256·width:
    with ``tap="conv"`` the output of the ninth convolution (read by a forward hook, before its
    batch norm, the residual sum and the ReLU); with ``tap="block"`` the res2 output."""

    def __init__(self, backbone: ResNetBackbone, tap: Literal["conv", "block"] = "conv"):
        super().__init__()
        self.stem, self.pool1, self.res2 = backbone.stem, backbone.pool1, backbone.res2
        self.tap = tap
        self.channels = (ninth_conv(backbone).out_channels if tap == "conv"
                         else backbone.stage_channels["res2"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.stem(x))
        if self.tap == "block":
            return self.res2(x)
        got: list[torch.Tensor] = []
        handle = self.res2[-1].conv3.register_forward_hook(lambda m, i, o: got.append(o))
        try:
            # The last bottleneck runs whole (stopping inside it would copy timm's internals);
            # the hook keeps conv3's own output, which bn3 does not modify in place.
            self.res2(x)
        finally:
            handle.remove()
        return got[0]


class SummingMapExtractor(nn.Module):
    """Image batch → holistic summing map (Sec. 3.3 test stage: "we first obtain the holistic
    summing maps from the verification network"). The image is divided into K horizontal
    regions, each resized to ``region_size`` (Sec. 4), passed through the frozen verification
    trunk; each region's feature maps are averaged into its local summing map (Eq. 4) and the K
    maps stacked (Eq. 5). Output B × 1 × K·h × w (h, w = region_size / 4)."""

    def __init__(self, trunk: LocalFeatureTrunk, K: int, region_size: tuple[int, int]):
        super().__init__()
        self.trunk, self.K, self.region_size = trunk, K, tuple(region_size)
        for p in self.trunk.parameters():
            p.requires_grad_(False)  # the verification network is fixed once trained

    def train(self, mode: bool = True):
        # Batch-norm statistics of the trained verification network stay as they are.
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        regions = [F.interpolate(r, size=self.region_size, mode="bilinear", align_corners=False)
                   for r in split_regions(x, self.K)]
        # All K regions of the batch in one pass, then back to per-region local summing maps.
        maps = local_summing_map(self.trunk(torch.cat(regions)))
        return holistic_summing_map(maps.chunk(self.K, dim=0))


# --------------------------------------------------------------------------------------------
# Networks


class VerificationNet(nn.Module):
    """Sec. 3.1–3.2: siamese ResNet-50 (one backbone = shared weights), square layer
    f' = (f1 − f2)² (Eq. 1), FC → 2 logits. Logit 0 = similar pair (p1 = 1 for a local similar
    pair, Eq. 2), logit 1 = dissimilar."""

    def __init__(self, backbone: ResNetBackbone, separate_bn: bool = False):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.feature_dim, 2)
        # Recipe ``pair_batchnorm``: one stacked batch (joint BN statistics) or one per branch.
        self.separate_bn = separate_bn

    def forward(self, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        if self.separate_bn:
            f1, f2 = self.backbone(xa), self.backbone(xb)
        else:
            f1, f2 = self.backbone(torch.cat([xa, xb])).chunk(2)
        return self.fc((f1 - f2) ** 2)


# Sec. 3.1/3.3: ResNet-50 → (dropout) → N-way FC; eval mode returns the 2048·width-dim feature
# that feeds the FC (the LEDF descriptor). Same network as the IDE baseline.
IdentificationNet = ClassifierNet


class LEDFNet(nn.Module):
    """Image batch → identification network input → logits (train) / descriptor (eval).

    ``extractor`` None: the image itself, resized to ``id_size`` (ResNet-50 (O)); otherwise the
    holistic summing map from the frozen verification trunk (LEDF, and W for K = 1)."""

    def __init__(self, idnet: IdentificationNet, id_size: tuple[int, int],
                 extractor: SummingMapExtractor | None = None):
        super().__init__()
        self.idnet, self.id_size, self.extractor = idnet, tuple(id_size), extractor

    def id_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.extractor is None:
            if tuple(x.shape[-2:]) == self.id_size:
                return x
            return F.interpolate(x, size=self.id_size, mode="bilinear", align_corners=False)
        return map_to_image(self.extractor(x), self.id_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.idnet(self.id_input(x))


# --------------------------------------------------------------------------------------------
# The registered method


@METHODS.register("ledf")
class LEDF(Method):
    Params = LEDFParams
    Recipe = LEDFRecipe

    def _backbone(self, recipe: LEDFRecipe) -> ResNetBackbone:
        # Sec. 4: ResNet-50 is "the CNN model" of both networks, fine-tuned (Sec. 3.1).
        return build_backbone("resnet50", width=recipe.backbone.width,
                              pretrained=recipe.backbone.pretrained)

    def build(self, params: LEDFParams, recipe: LEDFRecipe, num_classes: int) -> LEDFNet:
        idnet = IdentificationNet(self._backbone(recipe), num_classes, params.dropout)
        id_size = (recipe.id_input.height, recipe.id_input.width)
        if params.input == "image":
            return LEDFNet(idnet, id_size)
        trunk = LocalFeatureTrunk(self._backbone(recipe), params.tap)
        region = (recipe.region.height, recipe.region.width)
        return LEDFNet(idnet, id_size, SummingMapExtractor(trunk, params.K, region))

    def recipe_unused(self, params: LEDFParams) -> frozenset[str]:
        # Table 3's ResNet-50 (O) feeds the image itself: no verification network is trained.
        if params.input == "image":
            return frozenset({"region", "verification", "pair_ratio", "pair_epoch",
                              "pair_batchnorm"})
        return frozenset()

    # ---------------------------------------------------------------- stage 1
    @staticmethod
    def verification_recipe(params: LEDFParams, recipe: LEDFRecipe) -> dict:
        """The params and recipe parts that determine the verification network for this K
        (not the tap or anything of the identification stage, so those rows share it)."""
        return {"method": "ledf", "stage": "verification", "version": 1, "K": params.K,
                "input": recipe.input.model_dump(mode="json"),
                "region": recipe.region.model_dump(mode="json"),
                "backbone": recipe.backbone.model_dump(mode="json"),
                "verification": recipe.verification.model_dump(mode="json"),
                "pair_ratio": recipe.pair_ratio, "pair_epoch": recipe.pair_epoch,
                "pair_batchnorm": recipe.pair_batchnorm}

    def verification_config(self, params: LEDFParams, recipe: LEDFRecipe,
                            ctx: CellContext) -> dict:
        """Everything that determines the trained verification network (its cache key):
        ``verification_recipe``, the training data and the seed."""
        return {**self.verification_recipe(params, recipe), "dataset": ctx.dataset.fingerprint,
                "seed": ctx.seed}

    def shared_stages(self, params: LEDFParams, recipe: LEDFRecipe) -> dict[str, dict]:
        # Rows with a local-feature extractor reuse the cached verification network
        # (verification_network: get_or_train under verification_config); image rows train
        # none.
        return ({"verification": self.verification_recipe(params, recipe)}
                if params.input != "image" else {})

    def train_verification(self, params: LEDFParams, recipe: LEDFRecipe,
                           ctx: CellContext) -> VerificationNet:
        """Train the verification network on corresponding region pairs (Sec. 3.2, Sec. 4)."""
        ds = train_image_dataset(ctx, recipe.input)
        net = VerificationNet(self._backbone(recipe),
                              separate_bn=recipe.pair_batchnorm == "separate").to(ctx.device)
        sampler = RegionPairSampler(ds.labels, params.K, recipe.pair_ratio, ctx.seed,
                                    per_image=recipe.pair_epoch == "image_pairs")
        bs = recipe.verification.batch_size
        loader = train_loader(RegionPairDataset(ds), bs, ctx, sampler=sampler)
        size = (recipe.region.height, recipe.region.width)

        def step(batch):
            xa, xb, same, k = to_device(batch, ctx.device)
            logits = net(crop_regions(xa, k, params.K, size), crop_regions(xb, k, params.K, size))
            target = 1 - same  # class 0 = similar (p1 = 1 for a similar pair, Eq. 2)
            loss, acc = ce_and_acc(logits, target)
            return loss, {"acc": acc, "similar": float(same.float().mean())}

        train_stage(net, loader, step, recipe.verification, device=ctx.device,
                    stage=f"ledf-verif-K{params.K}",
                    groups=backbone_and_head_groups(net.backbone, net,
                                                    recipe.verification.backbone_lr_mult),
                    checkpoint=ctx.work_dir / f"verification-K{params.K}.ckpt",
                    checkpoint_every=ctx.checkpoint_every)
        return net

    def verification_network(self, params: LEDFParams, recipe: LEDFRecipe,
                             ctx: CellContext) -> VerificationNet:
        """The trained verification network for K, from the artefact cache (trained once per
        K and setting, shared by every row and table that uses it)."""
        net, folder, fresh = get_or_train(
            ctx.cache, "ledf_verification", self.verification_config(params, recipe, ctx),
            lambda: self.train_verification(params, recipe, ctx),
            lambda: VerificationNet(self._backbone(recipe)), file="verification.pt")
        if not fresh:
            log.info("  reusing verification network K=%d (%s)", params.K, folder.name)
        return net.to(ctx.device)

    # ---------------------------------------------------------------- stage 2
    def epoch_images(self, recipe, stage: str) -> float:
        # one region pair (two images) per training image per epoch (RegionPairSampler).
        return 2.0 if stage == "verification" else 1.0

    def fit(self, params: LEDFParams, recipe: LEDFRecipe, ctx: CellContext) -> LEDFNet:
        ds = train_image_dataset(ctx, recipe.input)
        model = self.build(params, recipe, ds.num_classes)
        if model.extractor is not None:
            vnet = self.verification_network(params, recipe, ctx)
            model.extractor.trunk.load_state_dict(
                LocalFeatureTrunk(vnet.backbone, params.tap).state_dict())
        model.to(ctx.device)
        loader = train_loader(ds, recipe.identification.batch_size, ctx)
        tag = "image" if params.input == "image" else f"K{params.K}"
        train_stage(model, loader, softmax_step(model, ctx.device), recipe.identification,
                    device=ctx.device, stage=f"ledf-ident-{tag}",
                    groups=backbone_and_head_groups(model.idnet.backbone, model.idnet,
                                                    recipe.identification.backbone_lr_mult),
                    checkpoint=ctx.work_dir / "identification.ckpt",
                    checkpoint_every=ctx.checkpoint_every)
        return model.eval()
