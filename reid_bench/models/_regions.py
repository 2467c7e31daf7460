"""Horizontal regions of images (LEDF Sec. 3.2–3.3): where the K regions of a map lie, the
regions themselves, and one chosen region of each image resized for a network.

(Leading underscore: the registry does not import this as a method module.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def region_bounds(height: int, K: int) -> list[tuple[int, int]]:
    """Row ranges ``[(start, stop), ...]`` of K horizontal regions of a ``height``-row map,
    top to bottom. Boundaries are ``round(k·height/K)``, so the regions tile the rows exactly
    once and differ in height by at most one row when ``height`` is not divisible by K."""
    if K < 1 or height < K:
        raise ValueError(f"cannot divide {height} rows into K={K} regions")
    edges = [int(round(k * height / K)) for k in range(K + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def split_regions(x: torch.Tensor, K: int) -> list[torch.Tensor]:
    """The K horizontal regions of ``x`` (… × H × W), top to bottom (views, no copy)."""
    return [x[..., a:b, :] for a, b in region_bounds(x.shape[-2], K)]


def crop_regions(x: torch.Tensor, k: torch.Tensor, K: int,
                 size: tuple[int, int]) -> torch.Tensor:
    """Region ``k[i]`` of each image ``x[i]`` (of K horizontal regions), resized to ``size``.
    One resize per region index over the images that chose it (bilinear resizing treats each
    image alone, so this equals resizing image by image)."""
    out = x.new_empty((x.shape[0], x.shape[1], *size))
    for j, (a, b) in enumerate(region_bounds(x.shape[-2], K)):
        idx = (k == j).nonzero(as_tuple=True)[0]
        if len(idx):
            out[idx] = F.interpolate(x[idx, :, a:b, :], size=size, mode="bilinear",
                                     align_corners=False)
    return out
