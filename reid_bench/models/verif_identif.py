"""Verif-Identif: the siamese identification + verification network of Zheng, Zheng & Yang,
"A Discriminatively Learned CNN Embedding for Person Re-identification" (TOMM 2017).

Architecture (Sec. III-B, Fig. 3): two weight-shared ImageNet backbones (CaffeNet, VGG16 or
ResNet-50 with the final FC removed) map an image pair to descriptors f1, f2 (fc7, 4,096-d, for
CaffeNet/VGG16; the pooled res5 activation, 2,048-d, for ResNet-50). On top:

* identification head (Sec. III-C, Eq. 1-2): a 1×1 convolution with one kernel per training
  identity on f (no ReLU), softmax cross-entropy, for each image of the pair;
* Square Layer (Sec. III-D): ``f_s = (f1 - f2)²``, non-parametric;
* verification head (Sec. III-D, Eq. 3-4): a 1×1 convolution with 2 kernels on f_s (no ReLU),
  softmax cross-entropy on same/different;
* dropout before the final convolutions (Sec. III-F; Sec. II-C: "dropout regularization on the
  embedding");
* loss = 0.5 × Identif(f1) + 0.5 × Identif(f2) + 1 × Verif(f1, f2) (Sec. III-F: weight 1 on the
  verification gradient, 0.5 on each identification gradient).

Variants (Table II, Sec. III-E/IV): ``losses`` selects identification only (I), verification
only (V), both (I+V), or the contrastive loss of Hadsell et al. in place of the verification
cross-entropy ("Cross-entropy vs. Contrastive loss", Sec. IV-B). ``pooling: mac`` is the
instance-retrieval variant of Sec. IV-C (Table VII): the final pooling becomes a global
max-pool (MAC) over the last convolutional map and f is that vector.

Training pairs (Sec. III-F): images in shuffled order, each paired with another image of the
same or a different identity; negative:positive ratio 1:1, ×1.01 per epoch, capped at 1:4.
Test (Sec. III-F): one branch, f L2-normalised, cosine ranking.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from ..core.errors import DatasetError
from ..core.registry import METHODS
from ..core.strict import Strict
from ..data.samplers import PairDataset, PairRatioSchedule, PairSampler
from ..engine.method import CellContext, Method
from ..engine.train import train_stage
from ._common import (
    StandardRecipe,
    backbone_and_head_groups,
    ce_and_acc,
    init_classifier,
    to_device,
    train_image_dataset,
    train_loader,
)
from .backbones import build_backbone

Loss = Literal["identification", "verification", "contrastive"]


class VerifIdentifParams(Strict):
    """Row-level switches: the backbone, which losses train it, how f is pooled, dropout rate."""

    backbone: Literal["resnet50", "vgg16", "caffenet"] = "resnet50"
    losses: tuple[Loss, ...] = ("identification", "verification")
    # "default": the backbone's own f (fc7 / average-pooled res5); "mac": global max-pool of the
    # last convolutional map (Sec. IV-C, Table VII).
    pooling: Literal["default", "mac"] = "default"
    dropout: float = Field(0.5, ge=0, lt=1)

    @field_validator("losses")
    @classmethod
    def _losses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("losses must name at least one of identification, verification, "
                             "contrastive")
        if len(set(v)) != len(v):
            raise ValueError(f"losses {list(v)} repeats a loss")
        if "verification" in v and "contrastive" in v:
            raise ValueError("the contrastive loss replaces the verification cross-entropy "
                             "(Sec. IV-B); name one of them")
        return v


class PairRecipe(Strict):
    """Negative:positive pair ratio schedule (Sec. III-F): ``start`` × ``factor``^epoch, at most
    ``maximum``."""

    start: float = Field(1.0, gt=0)
    factor: float = Field(1.01, ge=1)
    maximum: float = Field(4.0, gt=0)


class LossRecipe(Strict):
    """Loss weights (Sec. III-F) and the contrastive margin (Sec. IV-B variant)."""

    identification_weight: float = Field(0.5, ge=0)  # per image of the pair
    verification_weight: float = Field(1.0, ge=0)    # also the contrastive loss's weight
    contrastive_margin: float = Field(1.0, gt=0)     # on L2-normalised f, distances in [0, 2]


class VerifIdentifRecipe(StandardRecipe):
    """StandardRecipe (``train.batch_size`` counts image *pairs*, as Sec. III-F) + the pair
    schedule + the loss weights."""

    pairs: PairRecipe = PairRecipe()
    loss: LossRecipe = LossRecipe()
    # ``joint``: the pair runs as one stacked batch, so BatchNorm (ResNet-50) normalises both
    # branches together; ``separate``: one forward per branch, as two MatConvNet networks.
    pair_batchnorm: Literal["joint", "separate"] = "joint"


def square_layer(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """Sec. III-D Square Layer: element-wise ``(f1 - f2)²`` (same shape as the inputs)."""
    return (f1 - f2).pow(2)


def contrastive_loss(f1: torch.Tensor, f2: torch.Tensor, same: torch.Tensor,
                     margin: float) -> torch.Tensor:
    """Hadsell et al. (2006) contrastive loss, the DeepID2 verification loss the paper compares
    against (Sec. IV-B): mean over pairs of ``s·d²/2 + (1-s)·max(0, margin - d)²/2`` with ``d``
    the Euclidean distance between f1 and f2 and ``same`` (N,) 1 for positive pairs."""
    d = (f1 - f2).pow(2).sum(1).clamp_min(1e-12).sqrt()
    s = same.float()
    return (0.5 * s * d.pow(2) + 0.5 * (1 - s) * F.relu(margin - d).pow(2)).mean()


class VerifIdentifNet(nn.Module):
    """Shared backbone + heads. ``embed(x)`` → f (N × D); ``forward(x)`` in eval mode → the
    test descriptor, f L2-normalised; in training mode → f (heads are applied by ``heads``)."""

    def __init__(self, backbone: nn.Module, num_classes: int, losses: tuple[str, ...],
                 dropout: float, pooling: str = "default"):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.losses = tuple(losses)
        if pooling == "mac":
            dim = (backbone.stage_channels["res5"] if hasattr(backbone, "stage_channels")
                   else backbone.map_channels)
        else:
            dim = backbone.feature_dim
        self.feature_dim = dim
        # Sec. III-F: "we insert the dropout function before the final convolutional layer".
        self.dropout = nn.Dropout(dropout)
        # Sec. III-C/D: 1×1 convolutions on the 1×1×D descriptor, no ReLU after them.
        self.identity = nn.Conv2d(dim, num_classes, 1) if "identification" in losses else None
        self.verification = nn.Conv2d(dim, 2, 1) if "verification" in losses else None
        for conv in (self.identity, self.verification):
            if conv is not None:
                init_classifier(conv)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N×3×H×W) → f (N × feature_dim)."""
        if self.pooling == "mac":
            # MAC (Tolias et al.): max over the whole last activation map, any input size.
            return self.backbone.feature_map(x).amax(dim=(2, 3))
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.embed(x)
        return f if self.training else F.normalize(f, dim=1)

    @staticmethod
    def _conv1x1(conv: nn.Conv2d, v: torch.Tensor) -> torch.Tensor:
        return conv(v[:, :, None, None]).flatten(1)

    def heads(self, f1: torch.Tensor, f2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head outputs for a pair batch of descriptors: ``id1``/``id2`` (N × #ids logits) when
        identification is on, ``verif`` (N × 2 logits; column 0 = same, as q1 in Eq. 4) when
        verification is on."""
        d1, d2 = self.dropout(f1), self.dropout(f2)
        out: dict[str, torch.Tensor] = {}
        if self.identity is not None:
            out["id1"] = self._conv1x1(self.identity, d1)
            out["id2"] = self._conv1x1(self.identity, d2)
        if self.verification is not None:
            out["verif"] = self._conv1x1(self.verification, square_layer(d1, d2))
        return out


def pair_descriptors(model: VerifIdentifNet, x1: torch.Tensor, x2: torch.Tensor,
                     separate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """f of both images of a pair batch. The two branches share every weight (Sec. III-A), so
    one forward over the stacked pair batch is the siamese pass, BatchNorm then normalising
    both halves together; ``separate`` (recipe ``pair_batchnorm``) runs one batch per branch,
    as the paper's two MatConvNet networks do."""
    if separate:
        return model(x1), model(x2)
    f = model(torch.cat([x1, x2]))
    return f[: len(x1)], f[len(x1):]


def pair_loss(model: VerifIdentifNet, f1: torch.Tensor, f2: torch.Tensor, y1: torch.Tensor,
              y2: torch.Tensor, same: torch.Tensor, weights: LossRecipe
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The Sec. III-F objective for one batch of pairs: ``identification_weight`` × (CE(id1) +
    CE(id2)) + ``verification_weight`` × (CE(verif) or the contrastive loss), each term a
    batch mean, only the terms of ``model.losses``. Returns (loss, scalars for the log)."""
    out = model.heads(f1, f2)
    total = f1.new_zeros(())
    scalars: dict[str, float] = {}
    if "id1" in out:
        (ce1, acc1), (ce2, acc2) = ce_and_acc(out["id1"], y1), ce_and_acc(out["id2"], y2)
        total = total + weights.identification_weight * (ce1 + ce2)
        scalars["id_acc"] = (acc1 + acc2) / 2
    if "verif" in out:
        # Eq. 4: q1 = 1 for the same person, so class 0 = "same".
        target = 1 - same.long()
        ce, scalars["verif_acc"] = ce_and_acc(out["verif"], target)
        total = total + weights.verification_weight * ce
    if "contrastive" in model.losses:
        # Sec. II-C/III-D: no dropout on the embedding that the contrastive loss sees. We compare
        # L2-normalised f (the test descriptor), so the margin is scale-free (assumed).
        c = contrastive_loss(F.normalize(f1, dim=1), F.normalize(f2, dim=1), same,
                             weights.contrastive_margin)
        total = total + weights.verification_weight * c
        scalars["contrastive"] = float(c.detach())
    return total, scalars


class ScheduledPairSampler(PairSampler):
    """A ``PairSampler`` whose ratio follows a ``PairRatioSchedule``: ``set_epoch(epoch)`` (what
    the training loop calls) also sets the ratio of that epoch."""

    def __init__(self, pids, schedule: PairRatioSchedule, seed: int):
        super().__init__(pids, schedule.ratio(0), seed)
        self.schedule = schedule

    def set_epoch(self, epoch: int, ratio: float | None = None) -> None:
        super().set_epoch(epoch, self.schedule.ratio(epoch) if ratio is None else ratio)


@METHODS.register("verif_identif")
class VerifIdentif(Method):
    Params = VerifIdentifParams
    Recipe = VerifIdentifRecipe

    def build(self, params: VerifIdentifParams, recipe: VerifIdentifRecipe,
              num_classes: int) -> VerifIdentifNet:
        bb = build_backbone(params.backbone, width=recipe.backbone.width,
                            pretrained=recipe.backbone.pretrained)
        return VerifIdentifNet(bb, num_classes, params.losses, params.dropout, params.pooling)

    def recipe_unused(self, params: VerifIdentifParams) -> frozenset[str]:
        # CaffeNet and VGG16 have no BatchNorm: joint or separate statistics over the pair is
        # the same computation for them.
        if params.backbone in ("caffenet", "vgg16"):
            return frozenset({"pair_batchnorm"})
        return frozenset()

    def epoch_images(self, recipe, stage: str) -> float:
        # one pair (two images) per training image per epoch (PairSampler).
        return 2.0 if stage == "train" else 1.0

    def fit(self, params: VerifIdentifParams, recipe: VerifIdentifRecipe,
            ctx: CellContext) -> VerifIdentifNet:
        if len({s.pid for s in ctx.dataset.train}) < 2:
            # E.g. Table VII: Oxford5k is a test set; the paper trains on a landmarks image
            # folder, which a spec column cannot name yet (train and test on one dataset).
            raise DatasetError(
                f"dataset {ctx.dataset.name!r} has no training split with at least two classes, "
                "so the siamese network cannot be trained on it. Table VII trains on a landmarks "
                "image folder (dataset 'imagefolder') and tests on Oxford5k, which needs a "
                "column-level training dataset (see papers/verif_identif/README.md).")
        images = train_image_dataset(ctx, recipe.input)
        model = self.build(params, recipe, images.num_classes).to(ctx.device)
        p = recipe.pairs
        sampler = ScheduledPairSampler(images.labels,
                                       PairRatioSchedule(p.start, p.factor, p.maximum), ctx.seed)
        pairs = PairDataset(images, sampler)
        n_pairs = recipe.train.batch_size
        loader = train_loader(pairs, n_pairs, ctx, sampler=sampler)

        def step(batch):
            x1, y1, x2, y2, same = to_device(batch, ctx.device)
            f1, f2 = pair_descriptors(model, x1, x2, recipe.pair_batchnorm == "separate")
            loss, scalars = pair_loss(model, f1, f2, y1, y2, same, recipe.loss)
            scalars["neg_ratio"] = sampler.ratio
            return loss, scalars

        train_stage(model, loader, step, recipe.train, device=ctx.device, stage="verif_identif",
                    groups=backbone_and_head_groups(model.backbone, model,
                                                    recipe.train.backbone_lr_mult),
                    checkpoint=ctx.work_dir / "verif_identif.ckpt",
                    checkpoint_every=ctx.checkpoint_every)
        model.eval()
        return model
