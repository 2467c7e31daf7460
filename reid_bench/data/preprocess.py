"""The input preprocessing of a cell: which pretrained weights own the input's channel order,
scale and mean/std, and the training set's mean colour when the recipe subtracts it."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..engine.recipe import InputRecipe
from .base import ReidDataset

RGB = tuple[float, float, float]

# Mean colours by (data root, dataset fingerprint): computing one decodes up to 2,000 training
# images, so it is done once per training set and process, not once per cell. Bounded: a run
# touches a handful of training sets.
_MEAN_COLOURS: OrderedDict[tuple[str, str], RGB] = OrderedDict()
_MEMO_SIZE = 16


@dataclass(frozen=True)
class InputPreprocessing:
    """How an RGB image becomes the tensor a cell's network expects
    (``data.transforms.build_transform``): ``backbone`` names the pretrained weights
    (``reid_bench.weights``) that own channel order, scale and mean/std; ``mean_colour`` is
    the training set's mean colour (RGB in [0, 1]) that replaces the weights' mean under the
    recipe's ``normalize: mean_image``, else None."""

    backbone: str = "resnet50"
    mean_colour: RGB | None = None


def preprocess_for(input_recipe: InputRecipe | None, backbone: str,
                   train_set: ReidDataset) -> InputPreprocessing:
    """The preprocessing of a cell whose method reads images with ``input_recipe`` (None: a
    recipe without an input block) through ``backbone``'s pretrained weights, trained on
    ``train_set``. The mean colour is computed only for ``normalize: mean_image``, once per
    training set (memoised by its fingerprint)."""
    if input_recipe is None or input_recipe.normalize != "mean_image":
        return InputPreprocessing(backbone)
    key = (str(train_set.root), train_set.fingerprint)
    if key not in _MEAN_COLOURS:
        from .transforms import compute_mean_colour

        _MEAN_COLOURS[key] = compute_mean_colour(train_set.train)
        while len(_MEAN_COLOURS) > _MEMO_SIZE:
            _MEAN_COLOURS.popitem(last=False)
    return InputPreprocessing(backbone, _MEAN_COLOURS[key])
