"""A torch ``Dataset`` over ``Sample`` lists: opens, crops and transforms images."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..core.errors import DatasetError
from .base import Sample
from .image_file import open_checked


def open_image(sample: Sample):
    """The sample's image as an RGB PIL image, cropped to ``sample.bbox`` when set. A missing,
    truncated or corrupt file, or one over the pixel limit (``image_file.max_pixels``), raises
    DatasetError naming it."""
    from PIL import Image

    try:
        with open_checked(sample.path) as im:
            img = im.convert("RGB")  # forces a full decode, so truncation is caught here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{sample.path}: cannot read image ({e}). The file is missing, "
                           f"truncated or corrupt: re-extract the dataset, or run "
                           f"`reid-bench data check` to find every bad file.") from e
    if sample.bbox is not None:
        x1, y1, x2, y2 = sample.bbox
        img = img.crop((int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))))
    return img


class ImageDataset:
    """Items ``(image, label, camid, index)``: ``image`` = ``transform(PIL image)``, ``index`` =
    position in ``samples``. ``relabel=True`` maps pids to 0-based contiguous labels in sorted
    pid order (training); ``relabel=False`` keeps the raw pid (evaluation).

    ``num_classes`` is the number of distinct pids. ``labels`` lists every item's label, for
    samplers that must not open images."""

    def __init__(self, samples: Sequence[Sample], transform: Callable | None, relabel: bool):
        self.samples = list(samples)
        self.transform = transform
        self.relabel = relabel
        pids = sorted({s.pid for s in self.samples})
        self.pid_to_label = {p: i for i, p in enumerate(pids)} if relabel else {p: p for p in pids}
        self.labels = [self.pid_to_label[s.pid] for s in self.samples]
        self.num_classes = len(pids)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        s = self.samples[index]
        img = open_image(s)
        if self.transform is not None:
            img = self.transform(img)
        return img, self.labels[index], s.camid, index
