"""Deep-Person (Bai et al., "Deep-Person: Learning discriminative deep features for person
re-identification", Pattern Recognition 2020; arXiv:1711.10658): a ResNet-50 backbone feature map
fb shared by three branches (Sec. 3, Fig. 2):

* BpI, part-based identification (Sec. 3.2): each row of fb is average-pooled (1×W kernel) into
  a sequence of H = 8 part vectors, read head to foot by a two-layer bidirectional LSTM with
  U = 256 hidden units per direction; an FC after each step's hidden state gives O_t of length U
  (Fig. 4); the H vectors are concatenated into the part feature fp → softmax over N_c ids.
  Table 4's "w/o LSTM" variant replaces the LSTM by one 256-neuron FC per part slice.
* BgI, global identification (Sec. 3.3): global average pooling → FC → softmax over N_c ids.
* BtR, distance ranking (Sec. 3.4): another global average pooling gives fm, trained with the
  batch-hard triplet loss of Eq. (1) (Euclidean distance, margin m = 0.5) on P×K batches.

Loss L = λ1·L_trp + λ2·L_cls_p + λ3·L_cls_g (Eq. 3). Every branch can be switched off (Tables 4
and 6 are those ablations). The test descriptor is fm (Sec. 4.1) or, for Table 7, "fc": the
concatenation of the two identification branches' penultimate FC features.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from ..core.registry import METHODS
from ..core.strict import Strict
from ..data.torch_dataset import ImageDataset
from ..data.transforms import normalize_step
from ..engine.distributed import gather_with_grad
from ..engine.method import CellContext, Method
from ..engine.recipe import BackboneRecipe, GradClip, InputRecipe, OptimRecipe
from ..engine.train import train_stage
from ._common import backbone_and_head_groups, ce_and_acc, classifier, to_device, train_loader
from ._losses import batch_hard_triplet_loss
from ._sampling import IdentityEpochPK
from .backbones import build_backbone

# --------------------------------------------------------------------------------------------
# Params and recipe


class DeepPersonParams(Strict):
    """Row-level switches: which branches train (Tables 4, 6) and which descriptor is scored
    (Table 7)."""

    global_branch: bool = True    # BgI (Sec. 3.3)
    part_branch: bool = True      # BpI (Sec. 3.2)
    part_lstm: bool = True        # BpI through the BiLSTM; False: Table 4 "BpI w/o LSTM"
    triplet_branch: bool = True   # BtR (Sec. 3.4)
    descriptor: Literal["fm", "fc"] = "fm"  # Table 7; only changes evaluation

    @model_validator(mode="after")
    def _consistent(self) -> DeepPersonParams:
        if not (self.global_branch or self.part_branch or self.triplet_branch):
            raise ValueError("at least one of global_branch, part_branch, triplet_branch must "
                             "be true (nothing would be trained)")
        if not self.part_branch and not self.part_lstm:
            raise ValueError("part_lstm=false only makes sense with part_branch=true")
        if self.descriptor == "fc" and not (self.global_branch or self.part_branch):
            raise ValueError("descriptor 'fc' concatenates the identification branches' FC "
                             "features; enable global_branch and/or part_branch")
        return self


class DeepPersonInput(Strict):
    """Sec. 4.1's pipeline, only the values it has: train images resized to height×width, a
    random box whose area is ``crop_scale`` × the image area and whose height/width ratio lies in
    ``crop_aspect`` resized back to height×width (``None``: no crop), flip; test images "simply
    resized to 256×128"; ``normalize``: the ImageNet mean/std ("imagenet") or none."""

    height: int = Field(256, gt=0)
    width: int = Field(128, gt=0)
    flip: bool = True
    normalize: Literal["imagenet", "none"] = "imagenet"
    crop_scale: tuple[float, float] | None = None
    crop_aspect: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _crop_ranges(self) -> DeepPersonInput:
        if (self.crop_scale is None) != (self.crop_aspect is None):
            raise ValueError("crop_scale and crop_aspect go together (both set or both null)")
        if self.crop_scale is not None:
            lo, hi = self.crop_scale
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"crop_scale {self.crop_scale} must satisfy 0 < lo <= hi <= 1")
            a, b = self.crop_aspect
            if not 0 < a <= b:
                raise ValueError(f"crop_aspect {self.crop_aspect} must satisfy 0 < lo <= hi")
        return self


class DeepPersonArch(Strict):
    """Architecture constants (Sec. 3, 4.1)."""

    num_parts: int = Field(8, gt=0)       # H: rows of fb at 256×128 input, stride 32
    lstm_hidden: int = Field(256, gt=0)   # U: hidden units per direction; also |O_t|
    global_dim: int = Field(2048, gt=0)   # BgI's FC width
    last_stride: Literal[1, 2] = 2        # res5 stride (2: the standard ResNet-50)


class DeepPersonLoss(Strict):
    """Eq. (1) margin and Eq. (3) loss weights."""

    margin: float = Field(0.5, ge=0)
    triplet_weight: float = Field(1.0, ge=0)  # λ1
    part_weight: float = Field(1.0, ge=0)     # λ2
    global_weight: float = Field(1.0, ge=0)   # λ3


class PKRecipe(Strict):
    """P×K sampling (Sec. 3.4): K images per identity; P = train.batch_size / K. An "epoch" is
    ceil(N_c / P) batches (Sec. 4.1), so it covers about every identity once."""

    k: int = Field(8, gt=0)


class DeepPersonRecipe(Strict):
    input: DeepPersonInput = DeepPersonInput()
    backbone: BackboneRecipe = BackboneRecipe()
    arch: DeepPersonArch = DeepPersonArch()
    loss: DeepPersonLoss = DeepPersonLoss()
    sampler: PKRecipe = PKRecipe()
    # ``train.backbone_lr_mult``: the ImageNet ResNet-50 trunk's lr multiplier; the three
    # branches are new layers at the full rate (Sec. 4.1 names one rate for the whole network).
    # Sec. 4.1 "We apply gradient clipping to avoid gradient explosion": every parameter's
    # gradient is rescaled to at most this L2 norm (None: no clipping). ``train_stage`` applies
    # it as ``train.grad_clip`` (per parameter), once per step on true-scale, all-reduced
    # gradients (``train_optim``).
    grad_clip_norm: float | None = Field(None, gt=0)
    train: OptimRecipe = OptimRecipe(optimizer="adam", lr=3e-4, batch_size=128, epochs=150)

    def train_optim(self) -> OptimRecipe:
        """``train`` with ``grad_clip_norm`` as its per-parameter ``grad_clip``."""
        if self.grad_clip_norm is None:
            return self.train
        return self.train.model_copy(update={"grad_clip": GradClip(
            max_norm=self.grad_clip_norm, per_parameter=True)})

    @model_validator(mode="after")
    def _pk_fits(self) -> DeepPersonRecipe:
        if self.train.batch_size % self.sampler.k:
            raise ValueError(f"train.batch_size {self.train.batch_size} must be a multiple of "
                             f"sampler.k {self.sampler.k} (batch = P×K)")
        if self.grad_clip_norm is not None and self.train.grad_clip is not None:
            raise ValueError("set grad_clip_norm (Sec. 4.1's per-parameter clipping) or "
                             "train.grad_clip, not both")
        return self


# --------------------------------------------------------------------------------------------
# Network


class PartSequenceLSTM(nn.Module):
    """Sec. 3.2 / Fig. 4: a two-layer bidirectional LSTM over the part sequence (N×H×C →
    N×H×U). After each layer an FC maps the step's two hidden states (2U) to a U-vector; the
    second layer's are the O_t of Fig. 4. (The authors' released code fuses the two directions
    with an FC after each layer as well; an FC on [h_fwd; h_bwd] is the same map.)"""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.lstm1 = nn.LSTM(in_dim, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.fc1 = nn.Linear(2 * hidden, hidden)
        self.lstm2 = nn.LSTM(hidden, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.fc2 = nn.Linear(2 * hidden, hidden)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm1(seq)        # N×H×2U
        h, _ = self.lstm2(self.fc1(h))
        return self.fc2(h)             # N×H×U


class PerPartFC(nn.Module):
    """Table 4 "BpI w/o LSTM": an FC with ``out_dim`` neurons after each part slice (one weight
    matrix per part, so the variant has roughly the LSTM branch's parameter count, Sec. 4.4)."""

    def __init__(self, parts: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation
        self.weight = nn.Parameter(torch.empty(parts, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(parts, out_dim).uniform_(-bound, bound))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nhc,hcu->nhu", seq, self.weight) + self.bias


class DeepPersonNet(nn.Module):
    """Backbone + the enabled branches. Training mode: ``forward`` returns a dict with ``fm``
    and, per enabled identification branch, ``global_logits`` / ``part_logits``. Eval mode:
    the descriptor ``self.descriptor`` ("fm" or "fc"); ``describe(x, which)`` picks one."""

    def __init__(self, backbone: nn.Module, num_classes: int, params: DeepPersonParams,
                 arch: DeepPersonArch):
        super().__init__()
        self.backbone = backbone
        self.descriptor = params.descriptor
        self.num_parts = arch.num_parts
        c = backbone.feature_dim
        self.global_feat = self.global_cls = None
        self.part_seq = self.part_cls = None
        if params.global_branch:
            # Sec. 3.3: GAP → FC → softmax. BN + ReLU after the FC as in open-reid's embedding
            # (the authors' code base).
            self.global_feat = nn.Sequential(nn.Linear(c, arch.global_dim),
                                             nn.BatchNorm1d(arch.global_dim), nn.ReLU(True))
            nn.init.kaiming_normal_(self.global_feat[0].weight, mode="fan_out")
            nn.init.zeros_(self.global_feat[0].bias)
            self.global_cls = classifier(arch.global_dim, num_classes)
        if params.part_branch:
            self.part_seq = (PartSequenceLSTM(c, arch.lstm_hidden) if params.part_lstm
                             else PerPartFC(arch.num_parts, c, arch.lstm_hidden))
            self.part_cls = classifier(arch.num_parts * arch.lstm_hidden, num_classes)

    def part_sequence(self, fb: torch.Tensor) -> torch.Tensor:
        """fb (N×C×h×W) → the part sequence N×H×C, head to foot: each row average-pooled over
        its width (Sec. 3.2, a 1×W kernel). When h ≠ H, adaptive pooling groups rows."""
        rows = F.adaptive_avg_pool2d(fb, (self.num_parts, 1))  # = row means when h == H
        return rows.squeeze(3).transpose(1, 2)

    def branches(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every feature the enabled branches compute: fm, global_feat, part_feat."""
        fb = self.backbone.feature_map(x)
        out = {"fm": fb.mean(dim=(2, 3))}  # BtR's global average pooling (Sec. 3.4)
        if self.global_feat is not None:
            # BgI pools fb with its own GAP; average pooling has no weights, so it equals fm.
            out["global_feat"] = self.global_feat(out["fm"])
        if self.part_seq is not None:
            out["part_feat"] = self.part_seq(self.part_sequence(fb)).flatten(1)
        return out

    def describe(self, x: torch.Tensor, which: str) -> torch.Tensor:
        if which == "fm":  # the pooled map alone: the branches' layers need not run
            return self.backbone.feature_map(x).mean(dim=(2, 3))
        f = self.branches(x)
        return torch.cat([f[k] for k in ("global_feat", "part_feat") if k in f], dim=1)

    def forward(self, x: torch.Tensor):
        if not self.training:
            return self.describe(x, self.descriptor)
        f = self.branches(x)
        out = {"fm": f["fm"]}
        if self.global_cls is not None:
            out["global_logits"] = self.global_cls(f["global_feat"])
        if self.part_cls is not None:
            out["part_logits"] = self.part_cls(f["part_feat"])
        return out


# --------------------------------------------------------------------------------------------
# Data


def train_transform(inp: DeepPersonInput):
    """Sec. 4.1 augmentation: resize to height×width, random crop with area scale in
    ``crop_scale`` and height/width ratio in ``crop_aspect`` resized back to height×width,
    horizontal flip (p = 0.5), ToTensor, ImageNet normalisation."""
    from torchvision import transforms as T

    size = (inp.height, inp.width)
    steps: list = [T.Resize(size)]
    if inp.crop_scale is not None:
        lo, hi = inp.crop_aspect
        # torchvision's ratio is width/height.
        steps.append(T.RandomResizedCrop(size, scale=tuple(inp.crop_scale),
                                         ratio=(1.0 / hi, 1.0 / lo)))
    if inp.flip:
        steps.append(T.RandomHorizontalFlip(0.5))
    steps.append(T.ToTensor())
    # The ResNet-50 weights' own normalisation (or none), as every image pipeline.
    steps.append(normalize_step(inp))
    return T.Compose(steps)


def pk_loader(ds: ImageDataset, recipe: DeepPersonRecipe, ctx: CellContext):
    """The training loader: P×K batches (P = batch_size / K), ceil(N_c / P) per epoch."""
    k = recipe.sampler.k
    sampler = IdentityEpochPK(ds.labels, recipe.train.batch_size // k, k, ctx.seed)
    return train_loader(ds, recipe.train.batch_size, ctx, batch_sampler=sampler)


def training_step(model: DeepPersonNet, params: DeepPersonParams, w: DeepPersonLoss,
                  device: torch.device):
    """The ``train_stage`` step of Eq. (3): λ1·L_trp (Eq. 1, batch-hard over the global P×K
    batch, also under DDP) + λ2·L_cls_p + λ3·L_cls_g (Eq. 2) for the enabled branches."""

    def step(batch):
        x, y = to_device(batch[:2], device)
        out = model(x)
        loss = x.new_zeros(())
        scalars: dict[str, float] = {}
        if params.triplet_branch:  # Eq. (1)
            # Under DDP each rank holds P/N identities: mine over the global P×K batch,
            # as one process would (gradients flow back to each rank's own rows).
            fm, labels = gather_with_grad(out["fm"], y)
            l_trp, prec = batch_hard_triplet_loss(fm, labels, w.margin)
            loss = loss + w.triplet_weight * l_trp
            scalars |= {"trp": float(l_trp.detach()), "trp_prec": float(prec)}
        for name, weight in (("part", w.part_weight), ("global", w.global_weight)):
            logits = out.get(f"{name}_logits")
            if logits is not None:  # Eq. (2)
                l_cls, acc = ce_and_acc(logits, y)
                loss = loss + weight * l_cls
                scalars |= {name: float(l_cls.detach()), f"{name}_acc": acc}
        return loss, scalars

    return step


# --------------------------------------------------------------------------------------------
# Method


@METHODS.register("deep_person")
class DeepPerson(Method):
    Params = DeepPersonParams
    Recipe = DeepPersonRecipe
    eval_only_params = frozenset({"descriptor"})

    def build(self, params: DeepPersonParams, recipe: DeepPersonRecipe,
              num_classes: int) -> DeepPersonNet:
        bb = build_backbone("resnet50", width=recipe.backbone.width,
                            pretrained=recipe.backbone.pretrained,
                            last_stride=recipe.arch.last_stride)
        return DeepPersonNet(bb, num_classes, params, recipe.arch)

    def features(self, model: DeepPersonNet, params: DeepPersonParams):
        # The trained weights are shared by rows differing only in the descriptor.
        return partial(model.describe, which=params.descriptor)

    def test_input(self, recipe: DeepPersonRecipe) -> InputRecipe:
        # Sec. 4.1: "During testing phase, images are simply resized to 256×128."
        return InputRecipe(height=recipe.input.height, width=recipe.input.width,
                           normalize=recipe.input.normalize)

    def fit(self, params: DeepPersonParams, recipe: DeepPersonRecipe,
            ctx: CellContext) -> DeepPersonNet:
        ds = ImageDataset(ctx.dataset.train, train_transform(recipe.input), relabel=True)
        model = self.build(params, recipe, ds.num_classes).to(ctx.device)
        loader = pk_loader(ds, recipe, ctx)

        step = training_step(model, params, recipe.loss, ctx.device)
        # Sec. 4.1: the backbone is "the ResNet-50 [46] model pre-trained on ImageNet"; the
        # branches are new layers (x1).
        groups = backbone_and_head_groups(model.backbone, model, recipe.train.backbone_lr_mult)
        train_stage(model, loader, step, recipe.train_optim(), groups=groups, device=ctx.device,
                    stage="deep_person", checkpoint=ctx.work_dir / "deep_person.ckpt",
                    checkpoint_every=ctx.checkpoint_every)
        return model.eval()
