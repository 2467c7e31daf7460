"""Losses shared by re-id methods beyond softmax cross-entropy (``_common.ce_and_acc``).

(Leading underscore: the registry does not import this as a method module.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_hard_triplet_loss(feats: torch.Tensor, labels: torch.Tensor, margin: float,
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (1) (Hermans et al.'s batch-hard triplet loss), vectorised over anchors.

    ``feats``: N×D, ``labels``: N. For every anchor i: the farthest same-label sample and the
    closest other-label sample under the Euclidean distance; loss = mean_i [m + d_ap − d_an]_+.
    An anchor whose label occurs once has d_ap = 0 (itself); one without any negative
    contributes 0. Returns ``(loss, fraction of anchors with d_an > d_ap)``.
    """
    # In fp32 even under autocast: the expanded form |a|² + |b|² − 2ab cancels badly in
    # bf16/fp16 (distances between near-duplicate embeddings would be noise).
    with torch.autocast(feats.device.type, enabled=False):
        if feats.dtype not in (torch.float32, torch.float64):
            feats = feats.float()
        sq = feats.pow(2).sum(1)
        d2 = sq[:, None] + sq[None, :] - 2.0 * feats @ feats.t()
        # clamp: rounding can make d² slightly negative, and sqrt has no gradient at 0.
        dist = d2.clamp(min=1e-12).sqrt()
        same = labels[:, None] == labels[None, :]
        d_ap = dist.masked_fill(~same, float("-inf")).amax(1)
        d_an = dist.masked_fill(same, float("inf")).amin(1)
        loss = F.relu(margin + d_ap - d_an).mean()
    return loss, (d_an > d_ap).float().mean()
