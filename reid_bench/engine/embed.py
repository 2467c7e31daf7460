"""Turn a trained model into ``embed(samples) -> features``, the callable evaluation uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..data.base import Sample
from .recipe import InputRecipe


def make_embedder(features: Callable[[torch.Tensor], torch.Tensor], model: torch.nn.Module,
                  inp: InputRecipe, *, device: torch.device | str = "cpu", batch_size: int = 128,
                  num_workers: int = 0, mean_colour: tuple[float, float, float] | None = None,
                  accel: Any = None, backbone: str = "resnet50") -> Callable[[Sequence[Sample]], torch.Tensor]:
    """Return ``embed(samples)`` → float32 CPU tensor (N × D) of ``features(images)`` with
    ``model`` in eval mode and the test-time transform of ``inp``. ``accel``
    (``reid_bench.engine.accel.Accel``; default: the current switches, else plain fp32) applies the
    run's precision (autocast) and channels_last to the forward pass, as in training. The
    test-time transform gives the input the pretrained weights of ``backbone`` expect, with the
    training set's ``mean_colour`` under ``normalize: mean_image``
    (``data.preprocess.InputPreprocessing``)."""
    from ..data.samplers import make_loader
    from ..data.torch_dataset import ImageDataset
    from ..data.transforms import build_transform
    from .accel import Accel, current

    transform = build_transform(inp, train=False, mean_colour=mean_colour, backbone=backbone)
    acc: Accel = accel or current() or Accel(device_type=torch.device(device).type)
    acc.prepare_model(model)

    @torch.no_grad()
    def embed(samples: Sequence[Sample]) -> torch.Tensor:
        if len(samples) == 0:
            return torch.empty(0, 0)
        model.eval()
        ds = ImageDataset(list(samples), transform, relabel=False)
        # Full-size test images differ in size: one per batch.
        loader = make_loader(ds, 1 if inp.test_full_size else batch_size, shuffle=False, seed=0,
                             num_workers=num_workers, pin_memory=str(device).startswith("cuda"),
                             drop_last=False)
        out = []
        for batch in loader:
            x = acc.prepare_batch(batch[0]).to(device, non_blocking=True)
            with acc.autocast():
                f = features(x)
            out.append(f.float().cpu())
        return torch.cat(out)

    return embed
