"""What a registered method is, and the plain context the runner hands it.

A method lives in one file ``reid_bench/models/<method>.py`` and registers its class::

    @METHODS.register("ide")
    class IDE(Method):
        Params = IDEParams      # row-level knobs (backbone, loss switches, descriptor...)
        Recipe = IDERecipe      # training recipe (input, backbone weights, optimiser stages)
        def build(self, params, recipe, num_classes): ...   # untrained nn.Module
        def fit(self, params, recipe, ctx): ...             # trains, returns the module

The runner never looks inside: it validates ``Params``/``Recipe`` from the spec, calls ``fit`` (or
rebuilds the module and loads a cached state), then embeds query/gallery images with
``features(model, params)``. ``build(...).eval()(x)`` must return the test descriptor, so every
registered method can be smoke-tested by the registry test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import nn

from ..data.base import ReidDataset
from ..data.preprocess import InputPreprocessing
from .artifacts import ArtifactCache
from .recipe import InputRecipe


@dataclass
class CellContext:
    """Everything a method's ``fit`` may use besides its params and recipe. Plain values."""

    dataset: ReidDataset
    device: torch.device
    seed: int
    cache: ArtifactCache
    work_dir: Path
    num_workers: int = 0
    checkpoint_every: int = 0  # epochs; 0 = no mid-cell checkpoints
    deterministic: bool = False
    # Input preprocessing the runner resolved (data.preprocess.preprocess_for): the backbone
    # whose pretrained weights own channel order, scale and mean/std and, for ``normalize:
    # mean_image``, the training split's mean colour. Speed switches are not here: see
    # reid_bench.engine.accel.
    preprocessing: InputPreprocessing = InputPreprocessing()


class Method(ABC):
    """Base class of a registered method. Subclasses set ``Params`` and ``Recipe`` (strict
    pydantic models, ``reid_bench.core.strict.Strict``) and implement ``build`` and ``fit``."""

    Params: ClassVar[type[BaseModel]]
    Recipe: ClassVar[type[BaseModel]]
    # Params that only change how a trained model is scored (e.g. which descriptor), so rows
    # differing only in these share one training.
    eval_only_params: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def build(self, params: Any, recipe: Any, num_classes: int) -> nn.Module:
        """The untrained network for ``num_classes`` training identities; in eval mode
        ``build(...)(x)`` returns the test descriptor."""

    @abstractmethod
    def fit(self, params: Any, recipe: Any, ctx: CellContext) -> nn.Module:
        """Train every stage of the method on ``ctx.dataset`` and return the trained network
        (the runner caches its state_dict, ``reid_bench.trained_cache``)."""

    def features(self, model: nn.Module, params: Any) -> Callable[[torch.Tensor], torch.Tensor]:
        """Image batch → descriptor batch for evaluation (default: ``model(x)`` in eval mode)."""
        return model

    def test_input(self, recipe: Any) -> InputRecipe:
        """The input pipeline used to embed test images (default: the recipe's ``input``)."""
        return recipe.input

    def backbone_name(self, params: Any) -> str:
        """The backbone (``models.backbones``) whose pretrained weights define the input
        preprocessing: ``params.backbone`` where the method lets a row choose, else ResNet-50
        (the backbone of every method that does not)."""
        return getattr(params, "backbone", "resnet50")

    def code_fingerprint(self) -> str:
        """Hash of the source that determines trained weights: this method's module and every
        reid_bench module it imports, transitively (``reid_bench.engine.fingerprint``). Cached
        artefacts are keyed by it, so editing any of that code never silently reuses a model
        trained by the old code."""
        import inspect

        from .fingerprint import cached_fingerprint

        return cached_fingerprint(str(Path(inspect.getfile(type(self))).resolve()))

    def epoch_images(self, recipe: Any, stage: str) -> float:
        """Images one epoch of training ``stage`` (the recipe field of an ``OptimRecipe``)
        processes, per training-split image: 1 for a pass over the split (``run --dry-run``
        estimates; pair stages override it with 2)."""
        return 1.0

    def recipe_unused(self, params: Any) -> frozenset[str]:
        """Dotted recipe keys (``"verification.lr"``, or a whole block ``"verification"``) that
        a row with ``params`` never reads, e.g. the stage a row's switch leaves out. A
        ``--variant`` of such a key does not apply to the row (it would retrain the same
        recipe under the variant's label). Default: none."""
        return frozenset()

    def shared_stages(self, params: Any, recipe: Any) -> dict[str, dict]:
        """The training stages (recipe field names of ``OptimRecipe``s) whose network is cached
        apart and reused by every cell with the same key, besides the training data and seed
        (e.g. FMN's stage-1 GRN): stage → that key. ``run --dry-run`` counts such a stage once
        (``reid_bench.table.estimate``). Default: none."""
        return {}

    def training_key(self, params: BaseModel) -> dict:
        """The params that determine the trained weights."""
        return {k: v for k, v in params.model_dump(mode="json").items()
                if k not in self.eval_only_params}
