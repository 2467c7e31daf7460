"""FMN: the Feature Mask Network (Ding, Khan, Tang, Porikli, "Let Features Decide for Themselves:
Feature Mask Network for Person Re-identification", arXiv 2017).

Three parts (Sec. 3.1, Fig. 2):

* **GRN**, the Global Representation Network: an ImageNet ResNet-50 fine-tuned as an identity
  classifier (Sec. 4.2). Its pooled res5 activation is the global feature ``g`` (2048-d, Table 1
  "dim").
* **MN**, the Mixing Network (Sec. 3.2): an FC layer on ``g`` predicts an ``h·w`` transitional
  mask ``m' = ReLU(Wᵀg)`` (Eq. 1), reshaped column-major to ``h×w`` and exponentiated
  ``m = exp(m')`` (Eq. 2), then mixed into a low-level GRN map ``f`` (h×w×c) by the channel-wise
  Hadamard product ``o_i = f_i ∘ m`` (Eq. 3). Which map is masked is a row switch
  (``mask_layer``: pool1 — the paper's default — res2, res3 or res4; Table 5).
* **LAN**, the Locally Attentive Network: its own copy of the ResNet stages above the masked layer
  (for pool1: res2..res5, "four residual blocks", Sec. 3.1), started from the ImageNet weights
  (Algorithm 1: θ_o → θ_l), applied to ``o``; pooled → local feature ``l``.

Training (Algorithm 1, Sec. 3.3): stage 1 trains the GRN alone with cross-entropy (Eq. 4);
stage 2 freezes the GRN and trains MN + LAN with cross-entropy on the LAN prediction plus the
ranking loss ``max(0, p_t^G − p_t^L + m)`` (Eq. 5). Stage 1 does not depend on the masked layer,
so it is a cached artefact shared by every row with the same stage-1 config.

Test descriptor (Eq. 6, Sec. 3.4): ``D = [α·g/‖g‖, (1−α)·l/‖l‖]`` (``descriptor: fused``),
or one branch alone (``grn`` / ``lan``: Eq. 6 with α = 1 / 0, zero half dropped) for the
Table 1 ablation rows. The descriptor is an evaluation-only switch: those rows share one training.
"""

from __future__ import annotations

import logging
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..core.registry import METHODS
from ..core.strict import Strict
from ..engine.method import CellContext, Method
from ..engine.recipe import FixedSizeInputRecipe, InputRecipe, OptimRecipe
from ..engine.seeding import seed_everything
from ..engine.train import train_stage
from ..engine.trained import get_or_train
from ._common import (
    ModelRecipe,
    backbone_and_head_groups,
    ce_and_acc,
    classifier,
    softmax_step,
    to_device,
    train_image_dataset,
    train_loader,
)
from .backbones import ResNetBackbone, build_backbone

log = logging.getLogger(__name__)

MaskLayer = Literal["pool1", "res2", "res3", "res4"]
Descriptor = Literal["fused", "grn", "lan"]


# ------------------------------------------------------------------------------------ config
class FMNParams(Strict):
    """Row switches. ``mask_layer``: the GRN map the MN re-weights (Table 5); ``descriptor``
    and ``alpha``: the test descriptor (Table 1 rows, Eq. 6) — evaluation only."""

    mask_layer: MaskLayer = "pool1"
    descriptor: Descriptor = "fused"
    alpha: float = Field(0.5, ge=0, le=1)


class HeadRecipe(Strict):
    """Dropout before each identity classifier (GRN and LAN)."""

    dropout: float = Field(0.5, ge=0, lt=1)


class RankingRecipe(Strict):
    """Eq. 5: margin ``m`` on softmax probabilities and the loss weight in stage 2
    (stage-2 loss = CE(LAN) + ``weight`` · L_rank)."""

    margin: float = Field(0.1, ge=0, le=1)
    weight: float = Field(1.0, ge=0)


class FMNRecipe(ModelRecipe):
    """Input pipeline, backbone weights/width, ``stage1`` (GRN) and ``stage2`` (MN + LAN)
    optimiser stages, classifier head and ranking-loss settings. Each stage's
    ``backbone_lr_mult`` scales the lr of its ImageNet-initialised trunk (stage 1: the GRN's
    ResNet-50; stage 2: the LAN's ResNet stages) against the new layers (the identity
    classifiers; the MN has ``mn_lr_mult``)."""

    # The MN's mask is h×w of the training input (Eq. 1-2): test images take that size too.
    input: FixedSizeInputRecipe = FixedSizeInputRecipe()
    stage1: OptimRecipe = OptimRecipe()
    stage2: OptimRecipe = OptimRecipe()
    head: HeadRecipe = HeadRecipe()
    ranking: RankingRecipe = RankingRecipe()
    # Learning-rate multiplier of the MN weights W in stage 2 (LAN and its classifier: x1).
    # exp(ReLU(Wᵀg)) grows multiplicatively with W, so a smaller rate keeps the mask finite.
    mn_lr_mult: float = Field(1.0, ge=0)
    # What the MN reads as g (Sec. 3.2: "final fully connected layer in our case"): "pool5",
    # the pooled res5 feature (2048-d, Table 1's "dim" of the GRN), or "fc", the literal
    # reading: the fine-tuned GRN's last FC layer, one logit per training identity (Sec. 4.2).
    global_feature: Literal["pool5", "fc"] = "pool5"


# ------------------------------------------------------------------------------- functions
def fmn_mask(transitional: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Eq. 2: the (N × h·w) transitional mask m' → the N × h × w feature mask ``exp(m')``.

    Index k (0-based) goes to row ``i = k mod h``, column ``j = k // h`` (column-major, as
    MatConvNet's reshape that the paper's formula writes out)."""
    n = transitional.shape[0]
    return torch.exp(transitional.reshape(n, w, h).transpose(1, 2))


def mix(f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 3: channel-wise Hadamard product ``o_i = f_i ∘ m`` of an N×c×h×w map with an
    N×h×w mask (the same mask re-weights every channel)."""
    if f.shape[0] != mask.shape[0] or f.shape[2:] != mask.shape[1:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not fit feature map {tuple(f.shape)}")
    return f * mask.unsqueeze(1)


def ranking_loss(logits_g: torch.Tensor, logits_l: torch.Tensor, target: torch.Tensor,
                 margin: float) -> torch.Tensor:
    """Eq. 5, batch mean of ``max(0, p_t^G − p_t^L + m)`` where ``p_t`` is the softmax
    probability of the true class ``t`` under the GRN (``logits_g``, a fixed reference: no
    gradient flows into it) and the LAN (``logits_l``)."""
    p_g = F.softmax(logits_g.detach(), dim=1).gather(1, target[:, None]).squeeze(1)
    p_l = F.softmax(logits_l, dim=1).gather(1, target[:, None]).squeeze(1)
    return torch.clamp(p_g - p_l + margin, min=0).mean()


def fuse(g: torch.Tensor, l: torch.Tensor, alpha: float) -> torch.Tensor:  # noqa: E741 (Eq. 6)
    """Eq. 6: ``[α·g/‖g‖₂, (1−α)·l/‖l‖₂]`` row-wise (N × (dim g + dim l))."""
    return torch.cat([alpha * F.normalize(g, dim=1), (1 - alpha) * F.normalize(l, dim=1)], 1)


# ---------------------------------------------------------------------------------- modules
class GRN(nn.Module):
    """ResNet-50 → pooled res5 ``g`` → dropout → identity classifier (Sec. 4.2: the 1000-way FC
    replaced by one unit per training identity). ``forward`` returns logits."""

    def __init__(self, backbone: ResNetBackbone, num_classes: int, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier(backbone.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.backbone(x)))


class FMNOutput(NamedTuple):
    f: torch.Tensor        # low-level GRN map at the masked layer, N×c×h×w
    g: torch.Tensor        # global feature (pooled GRN res5), N×D
    logits_g: torch.Tensor
    mask: torch.Tensor     # Eq. 2, N×h×w (≥ 1: exp of a ReLU)
    o: torch.Tensor        # Eq. 3, masked map fed to the LAN
    l: torch.Tensor  # noqa: E741 — local feature (pooled LAN output), N×D
    logits_l: torch.Tensor


class FMNNet(nn.Module):
    """GRN + MN + LAN. ``forward`` in eval mode returns the fused descriptor (Eq. 6, α=0.5);
    ``branches(x)`` returns every intermediate (``FMNOutput``); ``descriptor(x, kind, alpha)``
    any of the three test descriptors. With ``grn_frozen`` the GRN stays in eval mode (BN
    statistics fixed) and runs without gradient (Algorithm 1 stage 2)."""

    def __init__(self, grn_backbone: ResNetBackbone, lan_backbone: ResNetBackbone,
                 num_classes: int, mask_layer: str, mask_hw: tuple[int, int], dropout: float,
                 global_feature: str = "pool5"):
        super().__init__()
        self.mask_layer = mask_layer
        self.mask_hw = mask_hw
        self.global_feature = global_feature
        self.grn = GRN(grn_backbone, num_classes, dropout)
        # MN (Eq. 1): W ∈ R^{m×n'} without bias, as written. Small random init (Algorithm 1:
        # "random initialization for θ_m"): W is non-zero so ReLU passes gradient, and the
        # initial mask exp(≈0) ≈ 1 leaves the LAN's ImageNet input almost unchanged.
        h, w = mask_hw
        g_dim = grn_backbone.feature_dim if global_feature == "pool5" else num_classes
        self.mn = nn.Linear(g_dim, h * w, bias=False)
        nn.init.normal_(self.mn.weight, std=0.001)
        # LAN: the LAN backbone's stages above the masked layer (its lower stages are unused,
        # so they are not kept).
        after = lan_backbone.stage_names[lan_backbone.stage_names.index(mask_layer) + 1:]
        self.lan = nn.Sequential(*[lan_backbone.stage(n) for n in after])
        self.lan_dropout = nn.Dropout(dropout)
        self.lan_classifier = classifier(lan_backbone.feature_dim, num_classes)
        self.grn_frozen = False

    def freeze_grn(self) -> None:
        """Algorithm 1 stage 2: GRN weights fixed (no gradient, BN in eval mode)."""
        self.grn_frozen = True
        for p in self.grn.parameters():
            p.requires_grad_(False)
            p.grad = None  # drop stage-1 leftovers: stage 2 must not see or apply them
        self.grn.eval()

    def train(self, mode: bool = True) -> FMNNet:
        super().train(mode)
        if self.grn_frozen:
            self.grn.eval()
        return self

    def _global(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bb = self.grn.backbone
        f = bb.forward_from(x, stop=self.mask_layer)
        g = bb.forward_from(f, start=self.mask_layer).mean(dim=(2, 3))
        return f, g, self.grn.classifier(self.grn.dropout(g))

    def branches(self, x: torch.Tensor) -> FMNOutput:
        if self.grn_frozen or not self.training:
            with torch.no_grad():
                f, g, logits_g = self._global(x)
        else:
            f, g, logits_g = self._global(x)
        g_mn = g if self.global_feature == "pool5" else logits_g  # Sec. 3.2's g
        mask = fmn_mask(F.relu(self.mn(g_mn)), *self.mask_hw)   # Eq. 1, Eq. 2
        o = mix(f, mask)                                      # Eq. 3
        l = self.lan(o).mean(dim=(2, 3))  # noqa: E741 (the paper's l)
        logits_l = self.lan_classifier(self.lan_dropout(l))
        return FMNOutput(f, g, logits_g, mask, o, l, logits_l)

    def descriptor(self, x: torch.Tensor, kind: str = "fused", alpha: float = 0.5
                   ) -> torch.Tensor:
        """Test descriptor: "fused" = Eq. 6; "grn" / "lan" = the ℓ2-normalised g / l (Eq. 6 with
        α = 1 / 0 without its all-zero half)."""
        if kind == "grn":
            _, g, _ = self._global(x)
            return F.normalize(g, dim=1)
        out = self.branches(x)
        if kind == "lan":
            return F.normalize(out.l, dim=1)
        if kind == "fused":
            return fuse(out.g, out.l, alpha)
        raise ValueError(f"unknown FMN descriptor {kind!r}: use fused, grn or lan")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.branches(x).logits_l
        return self.descriptor(x)


def mask_size(backbone: ResNetBackbone, layer: str, height: int, width: int) -> tuple[int, int]:
    """Spatial size (h, w) of ``backbone``'s ``layer`` output for a ``height``×``width`` input
    (Table 5: 56×56 at pool1/res2, 28×28 at res3, 14×14 at res4 for 224×224)."""
    was = backbone.training
    backbone.eval()
    with torch.no_grad():
        # A one-image probe is exact for any padding/stride arithmetic and cheap (stops early).
        shape = backbone.forward_from(torch.zeros(1, 3, height, width), stop=layer).shape
    backbone.train(was)
    return int(shape[2]), int(shape[3])


# ----------------------------------------------------------------------------------- method
@METHODS.register("fmn")
class FMN(Method):
    Params = FMNParams
    Recipe = FMNRecipe
    eval_only_params = frozenset({"descriptor", "alpha"})

    def build(self, params: FMNParams, recipe: FMNRecipe, num_classes: int) -> FMNNet:
        def backbone() -> ResNetBackbone:
            return build_backbone("resnet50", width=recipe.backbone.width,
                                  pretrained=recipe.backbone.pretrained)

        grn_bb = backbone()
        lan_bb = backbone()  # Algorithm 1: θ_o → θ_l (ImageNet weights, own parameters)
        hw = mask_size(grn_bb, params.mask_layer, recipe.input.height, recipe.input.width)
        return FMNNet(grn_bb, lan_bb, num_classes, params.mask_layer, hw, recipe.head.dropout,
                      recipe.global_feature)

    def test_input(self, recipe: FMNRecipe) -> InputRecipe:
        return InputRecipe.model_validate(recipe.input.model_dump())

    def features(self, model: FMNNet, params: FMNParams):
        return lambda x: model.descriptor(x, params.descriptor, params.alpha)

    @staticmethod
    def grn_recipe(recipe: FMNRecipe) -> dict:
        """The recipe parts that determine the stage-1 GRN: not the masked layer nor the
        stage-2 settings, so Table 5's rows share one GRN."""
        return {"what": "fmn stage-1 GRN", "input": recipe.input.model_dump(mode="json"),
                "backbone": recipe.backbone.model_dump(mode="json"),
                "stage1": recipe.stage1.model_dump(mode="json"),
                "head": recipe.head.model_dump(mode="json")}

    @classmethod
    def grn_config(cls, recipe: FMNRecipe, ctx: CellContext, num_classes: int) -> dict:
        """Everything that determines the stage-1 GRN (its cache key): ``grn_recipe``, the
        classes, the training data and the seed."""
        return {**cls.grn_recipe(recipe), "num_classes": num_classes,
                "dataset": ctx.dataset.fingerprint, "seed": ctx.seed}

    def shared_stages(self, params: FMNParams, recipe: FMNRecipe) -> dict[str, dict]:
        # Stage 1 is the cached GRN (fit: get_or_train under grn_config).
        return {"stage1": self.grn_recipe(recipe)}

    def fit(self, params: FMNParams, recipe: FMNRecipe, ctx: CellContext) -> FMNNet:
        ds = train_image_dataset(ctx, self.test_input(recipe))  # its train half
        model = self.build(params, recipe, ds.num_classes)

        # ---- Stage 1 (Algorithm 1 step 1): GRN alone, cross-entropy (Eq. 4). Cached.
        def train_grn() -> GRN:
            seed_everything(ctx.seed)
            grn = model.grn.to(ctx.device)
            # Sec. 4.2: the ImageNet ResNet-50 is fine-tuned with its 1000-way FC replaced by
            # a new identity classifier: trunk at stage1.backbone_lr_mult x lr, classifier x1.
            train_stage(grn, train_loader(ds, recipe.stage1.batch_size, ctx),
                        softmax_step(grn, ctx.device), recipe.stage1, device=ctx.device,
                        groups=backbone_and_head_groups(grn.backbone, grn,
                                                        recipe.stage1.backbone_lr_mult),
                        stage="fmn-grn", checkpoint=ctx.work_dir / "grn.ckpt",
                        checkpoint_every=ctx.checkpoint_every)
            return grn

        _, folder, _ = get_or_train(ctx.cache, "fmn_grn",
                                    self.grn_config(recipe, ctx, ds.num_classes), train_grn,
                                    lambda: model.grn, file="grn.pt")
        log.info("[fmn] stage-1 GRN %s (shared by rows with the same stage-1 config)",
                 folder.name)

        # ---- Stage 2 (Algorithm 1 step 3): GRN fixed; MN + LAN with Eq. 4 + Eq. 5.
        model.to(ctx.device)
        model.freeze_grn()
        # Re-seed: stage 2 draws the same batches whether stage 1 was trained or loaded.
        seed_everything(ctx.seed + 1)
        loader = train_loader(ds, recipe.stage2.batch_size, ctx)
        rk = recipe.ranking

        def step2(batch):
            x, y = to_device(batch[:2], ctx.device)
            out = model.branches(x)
            ce, acc = ce_and_acc(out.logits_l, y)
            rank = ranking_loss(out.logits_g, out.logits_l, y, rk.margin)
            return ce + rk.weight * rank, {"ce": float(ce.detach()),
                                           "rank": float(rank.detach()), "acc": acc}

        # Algorithm 1: the LAN's ResNet stages start from the ImageNet weights (θ_o → θ_l), so
        # they are the stage's trunk (stage2.backbone_lr_mult); the LAN classifier is new (x1),
        # the MN has its own multiplier. The frozen GRN has no trainable parameters.
        groups = [(list(model.lan.parameters()), recipe.stage2.backbone_lr_mult),
                  (list(model.lan_classifier.parameters()), 1.0),
                  (list(model.mn.parameters()), recipe.mn_lr_mult)]
        train_stage(model, loader, step2, recipe.stage2, groups=groups,
                    device=ctx.device, stage=f"fmn-{params.mask_layer}",
                    checkpoint=ctx.work_dir / "fmn_stage2.ckpt",
                    checkpoint_every=ctx.checkpoint_every)
        return model.eval()
