"""LGEU: the Local-Global Extraction Unit (Wang et al., "Local-Global Extraction Unit for Person
Re-identification", ICONIP 2018), the SE-unit baseline of its Table 1 and the plain ResNet-50
baseline.

The unit replaces ResNet-50's global average pooling on the last feature map X (C×H×W, Fig. 1):

* Eq. 1 — local average pooling: X is cut into K horizontal parts of Δ = H/K rows; L^{c,k} is
  the mean of channel c over part k (L is C×K).
* Eq. 2 — K independent branches, one per part: V^{·,k} = sigmoid(ω2^k · ReLU(ω1^k · L^{·,k}))
  with ω1^k of size R×C and ω2^k of size C×R (no bias terms are written; ``gate_bias`` adds them).
* Eq. 3 — local selection: every row i of X is multiplied channel-wise by the gate of its part,
  S^{c,i,j} = X^{c,i,j} · V^{c,⌈i/Δ⌉}.
* Eq. 4 — global fusion: Y = global average pool of S (C-dim), followed by a softmax identity
  loss (Sec. 2.2). Y is the test descriptor, compared with the cosine distance (Sec. 3.1).

R (Sec. 2.1: "the reduction dimension, set to 16"): the printed matrix sizes make R the hidden
width of each branch (``reduction_mode: width``: hidden = R); the word "reduction" and the SE
ancestry ([7]: hidden = C/r, r = 16) suggest a reduction ratio (``reduction_mode: ratio``:
hidden = C // R). Both are selectable; the specs say which one they assume.

``unit: se`` is the Squeeze-and-Excitation unit (Hu et al. [7]) put where LGEU sits: one
branch over the whole map (global average → FC → ReLU → FC → sigmoid → channel scaling) then
GAP, i.e. LGEU with K = 1 (Sec. 2.1 says as much). ``unit: gap`` is the plain ResNet-50
baseline (Sec. 3.2: "the ResNet50 fine-tuned from ImageNet as our baseline").
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ..core.registry import METHODS
from ..core.strict import Strict
from ..engine.method import CellContext, Method
from ..engine.train import train_stage
from ._common import (
    StandardRecipe,
    backbone_and_head_groups,
    classifier,
    softmax_step,
    train_image_dataset,
    train_loader,
)
from .backbones import build_backbone


class LGEUParams(Strict):
    """Row-level switches. ``unit``: what replaces/precedes the global pooling (``gap`` = the
    plain baseline, ``se`` = SE unit, ``lgeu`` = the paper's unit). ``parts`` = K (ignored by
    ``gap``; ``se`` is K = 1 by definition). ``reduction`` = R with its meaning set by
    ``reduction_mode`` (``width``: hidden = R; ``ratio``: hidden = C // R). ``classifier``:
    ``linear`` (one linear layer on Y, the paper names no other) or ``bottleneck`` (Y → FC 512
    → BatchNorm → ReLU → dropout 0.5 → linear, the IDE/torchreid head); Y is the descriptor
    either way."""

    unit: Literal["gap", "se", "lgeu"] = "lgeu"
    parts: int = Field(4, ge=1)
    reduction: int = Field(16, ge=1)
    reduction_mode: Literal["width", "ratio"] = "width"
    gate_bias: bool = False
    classifier: Literal["linear", "bottleneck"] = "linear"


def hidden_width(channels: int, reduction: int, mode: str) -> int:
    """Width of a branch's hidden layer: R itself (``width``) or C // R (``ratio``, at least 1)."""
    if mode == "width":
        return reduction
    if mode == "ratio":
        return max(1, channels // reduction)
    raise ValueError(f"reduction_mode {mode!r}: use 'width' or 'ratio'")


def part_bounds(height: int, parts: int) -> list[int]:
    """Row boundaries of ``parts`` horizontal stripes of a map ``height`` rows tall: part k holds
    rows [b[k], b[k+1]). With H divisible by K these are the Δ = H/K stripes of Eq. 1; otherwise
    the stripes differ by at most one row (the paper only uses H = 8, K = 4)."""
    if parts > height:
        raise ValueError(f"cannot split a feature map of height {height} into {parts} parts: "
                         "use fewer parts or a larger input")
    return [(k * height) // parts for k in range(parts + 1)]


class LocalGlobalExtractionUnit(nn.Module):
    """f: X (N×C×H×W) → Y (N×C), Eq. 1–4. ``parts`` = K branches, each C → ``hidden`` → C."""

    def __init__(self, channels: int, parts: int, hidden: int, bias: bool = False):
        super().__init__()
        self.channels, self.parts, self.hidden = channels, parts, hidden
        # One branch per part (Eq. 2: ω1^k, ω2^k are not shared across k).
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Linear(channels, hidden, bias=bias), nn.ReLU(inplace=True),
                          nn.Linear(hidden, channels, bias=bias), nn.Sigmoid())
            for _ in range(parts))

    def local_pool(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1: X (N×C×H×W) → L (N×C×K), the mean of each channel over each part's rows."""
        b = part_bounds(x.shape[2], self.parts)
        return torch.stack([x[:, :, b[k]:b[k + 1]].mean(dim=(2, 3)) for k in range(self.parts)],
                           dim=2)

    def gates(self, local: torch.Tensor) -> torch.Tensor:
        """Eq. 2: L (N×C×K) → V (N×C×K), V^{·,k} = σ2(ω2^k σ1(ω1^k L^{·,k}))."""
        return torch.stack([br(local[:, :, k]) for k, br in enumerate(self.branches)], dim=2)

    def select(self, x: torch.Tensor, gates: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 3: S = X re-weighted row-wise by its part's gate (``gates`` overrides V)."""
        v = self.gates(self.local_pool(x)) if gates is None else gates
        b = part_bounds(x.shape[2], self.parts)
        rows = torch.tensor([b[k + 1] - b[k] for k in range(self.parts)], device=x.device)
        v_rows = torch.repeat_interleave(v, rows, dim=2)  # N×C×H: V^{c,⌈i/Δ⌉}
        return x * v_rows.unsqueeze(3)

    def forward(self, x: torch.Tensor, gates: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 4: Y = global average pool of S (N×C)."""
        return self.select(x, gates).mean(dim=(2, 3))


class GlobalAvgPool(nn.Module):
    """The baseline's pooling: Y = mean of X over H×W."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def build_pooling(params: LGEUParams, channels: int) -> nn.Module:
    """The module mapping the last feature map to the descriptor for ``params.unit``."""
    if params.unit == "gap":
        return GlobalAvgPool()
    hidden = hidden_width(channels, params.reduction, params.reduction_mode)
    parts = 1 if params.unit == "se" else params.parts
    return LocalGlobalExtractionUnit(channels, parts, hidden, bias=params.gate_bias)


class LGEUNet(nn.Module):
    """ResNet-50 trunk → pooling (GAP / SE / LGEU) → Y → linear classifier (softmax loss).
    ``forward`` returns logits in training mode and the descriptor Y in eval mode."""

    def __init__(self, backbone: nn.Module, pooling: nn.Module, num_classes: int,
                 head: str = "linear"):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        dim = backbone.feature_dim
        if head == "bottleneck":
            self.classifier = nn.Sequential(nn.Linear(dim, 512), nn.BatchNorm1d(512),
                                            nn.ReLU(inplace=True), nn.Dropout(0.5),
                                            classifier(512, num_classes))
        else:
            self.classifier = classifier(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pooling(self.backbone.feature_map(x))
        if not self.training:
            return y
        return self.classifier(y)


@METHODS.register("lgeu")
class LGEU(Method):
    Params = LGEUParams
    Recipe = StandardRecipe

    def build(self, params: LGEUParams, recipe: StandardRecipe, num_classes: int) -> LGEUNet:
        bb = build_backbone("resnet50", width=recipe.backbone.width,
                            pretrained=recipe.backbone.pretrained)
        return LGEUNet(bb, build_pooling(params, bb.feature_dim), num_classes, params.classifier)

    def fit(self, params: LGEUParams, recipe: StandardRecipe, ctx: CellContext) -> LGEUNet:
        ds = train_image_dataset(ctx, recipe.input)
        model = self.build(params, recipe, ds.num_classes).to(ctx.device)
        loader = train_loader(ds, recipe.train.batch_size, ctx)

        step = softmax_step(model, ctx.device)  # Sec. 2.2: softmax loss on Y

        # The unit and the classifier are new layers: full lr; the ImageNet trunk at
        # backbone_lr_mult × lr (the spec says what it assumes).
        train_stage(model, loader, step, recipe.train, device=ctx.device, stage=params.unit,
                    groups=backbone_and_head_groups(model.backbone, model,
                                                    recipe.train.backbone_lr_mult),
                    checkpoint=ctx.work_dir / f"{params.unit}.ckpt",
                    checkpoint_every=ctx.checkpoint_every)
        return model
