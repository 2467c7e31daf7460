"""A user-supplied labelled image folder ``<path>/<class>/<image>``, for training on data such
as a landmarks collection (Verif-Identif, Table VII). Train split only."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import DatasetError
from ..core.registry import DATASETS
from ._common import list_files
from .base import ReidDataset, Sample, fingerprint_samples

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")


# No default location (the spec names the folder): `data check` skips it.
@DATASETS.register("imagefolder", check_variants=[])
def load_imagefolder(root: Path, path: str | None = None) -> ReidDataset:
    """Images under ``path`` (absolute, or relative to the data root ``root``), one sub-folder
    per class. pid = 1-based index of the class folder in sorted name order (0 would read as
    a Market distractor), ``meta["classes"][pid - 1]`` is its name; camid = 0. Sub-folders without images are skipped
    (``meta["empty_classes"]``). query and gallery are empty."""
    if not path:
        raise DatasetError("dataset 'imagefolder' needs the option path: a folder holding one "
                           "sub-folder of images per class (absolute or relative to the data root).")
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        folder = Path(root) / folder
    if not folder.is_dir():
        raise DatasetError(f"imagefolder: {folder} is not a folder. Expected {folder}/<class>/"
                           f"<image> with images ending in {', '.join(IMAGE_SUFFIXES)}.")
    classes, empty, train = [], [], []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = list_files(d, IMAGE_SUFFIXES)
        if not files:
            empty.append(d.name)
            continue
        train += [Sample(str(d / f), len(classes) + 1, 0) for f in files]
        classes.append(d.name)
    if not train:
        raise DatasetError(f"imagefolder: no images under {folder}/<class>/ (looked for "
                           f"{', '.join(IMAGE_SUFFIXES)}).")
    splits = {"train": train, "query": [], "gallery": []}
    return ReidDataset(name="imagefolder", root=folder, splits=splits,
                       fingerprint=fingerprint_samples(folder, splits),
                       meta={"classes": classes, "empty_classes": empty})
