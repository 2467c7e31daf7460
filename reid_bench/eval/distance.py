"""Query × gallery distance matrices, computed in torch on the device, in blocks of queries."""

from __future__ import annotations

from typing import Any

import torch

from ._tensor import as_tensor, check_choice

DISTANCES = ("euclidean", "sqeuclidean", "cosine")


def _block_rows(num_cols: int, budget_elems: int = 1 << 25) -> int:
    # Block size so that one block of the output stays near 128 MiB in float32.
    return max(1, budget_elems // max(1, num_cols))


def compute_distance(qf: Any, gf: Any, metric: str = "euclidean", *,
                     device: str | torch.device | None = None,
                     out_device: str | torch.device | None = "cpu",
                     block_rows: int | None = None) -> torch.Tensor:
    """Distance between every query feature and every gallery feature.

    ``qf`` (Q×D) and ``gf`` (G×D) are numpy arrays or torch tensors. ``metric``:
    ``"euclidean"`` ‖q−g‖, ``"sqeuclidean"`` ‖q−g‖², ``"cosine"`` 1 − cos on L2-normalised
    features. Computed in float32 (float64 inputs stay float64) on ``device`` (default: the
    features' device), in blocks of queries so peak memory is one output block beyond the
    result. Returns a Q×G tensor on ``out_device`` (``None`` = the compute device).
    """
    check_choice("distance", metric, DISTANCES)
    q = as_tensor(qf)
    g = as_tensor(gf)
    dev = torch.device(device) if device is not None else q.device
    dtype = torch.float64 if (q.dtype == torch.float64 or g.dtype == torch.float64) else torch.float32
    q = q.to(dev, dtype)
    g = g.to(dev, dtype)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"features must be Q×D and G×D with the same D, got {tuple(q.shape)} and {tuple(g.shape)}")
    if metric == "cosine":
        q = torch.nn.functional.normalize(q, dim=1)
        g = torch.nn.functional.normalize(g, dim=1)
    else:
        g_sq = (g * g).sum(1)
    odev = dev if out_device is None else torch.device(out_device)
    out = torch.empty((q.shape[0], g.shape[0]), dtype=dtype, device=odev)
    step = block_rows or _block_rows(g.shape[0])
    gt = g.t()
    for s in range(0, q.shape[0], step):
        qb = q[s:s + step]
        prod = qb @ gt
        if metric == "cosine":
            d = prod.neg_().add_(1.0)
        else:
            # ‖q‖² + ‖g‖² − 2 q·g; clamp the tiny negatives that cancellation produces.
            d = prod.mul_(-2.0).add_((qb * qb).sum(1, keepdim=True)).add_(g_sq).clamp_(min=0)
            if metric == "euclidean":
                d = d.sqrt_()
        out[s:s + step] = d.to(odev)
    return out
