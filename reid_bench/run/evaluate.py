"""Step 3 of a cell (``run/runner.py``): ``evaluate(prepared, model, settings)`` → ``Result``:
embed the cell's test images with its input preprocessing and score them with its column's
protocol (``eval.evaluate_cell``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..store.outcome import Prepared, Result


@dataclass(frozen=True)
class EvalSettings:
    """The run's side of an evaluation: the device, loader workers and speed switches."""

    device: torch.device
    num_workers: int
    accel: Any  # engine.accel.Accel, resolved for the device


def evaluate(prepared: Prepared, model: torch.nn.Module, settings: EvalSettings) -> Result:
    """``model`` (``prepared``'s trained network) evaluated on ``prepared.test_set`` with the
    cell's protocol, distance, AP definition, re-ranking and seed."""
    from ..engine.embed import make_embedder
    from ..eval import evaluate_cell

    method, params, cell = prepared.method, prepared.params, prepared.cell
    pre = prepared.preprocessing
    embed = make_embedder(method.features(model, params), model,
                          method.test_input(prepared.recipe), device=settings.device,
                          num_workers=settings.num_workers, mean_colour=pre.mean_colour,
                          accel=settings.accel, backbone=pre.backbone)
    ev = prepared.config["eval"]
    res = evaluate_cell(ev["protocol"], prepared.test_set, embed, distance=ev["distance"],
                        ap=ev["ap"], rerank=ev["rerank"], seed=cell.seed,
                        device=str(settings.device), options=ev["options"])
    return Result(metrics=res.metrics, cmc=res.cmc, eval_details=res.details,
                  num_queries=res.num_queries, skipped_queries=res.num_skipped_queries)
