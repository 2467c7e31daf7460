"""Oxford5k buildings (Philbin et al., "Object retrieval with large vocabularies and fast
spatial matching", CVPR 2007): 5,062 images, 55 queries over 11 landmarks.

On disk::

    <root>/oxford5k/jpg/*.jpg                 (or oxbuild_images/*.jpg, the archive's name)
    <root>/oxford5k/gt_files_170407/<landmark>_<n>_{query,good,ok,junk}.txt

A query file holds one line ``oxc1_all_souls_000013 136.5 34.1 648.5 955.9``: the image (with
an ``oxc1_`` prefix) and its query box x1 y1 x2 y2. good/ok/junk files list image names.

Splits: ``query`` = the 55 query images with ``bbox`` (cropped by the loader), in sorted query
file order; ``gallery`` = all images, sorted; ``train`` empty. pid = -2 and camid = 0 for every
sample (retrieval does not use identities; -2 cannot be mistaken for a Market label).
``meta["oxford_gt"][i]`` = {"query": stem, "good": set, "ok": set, "junk": set} (image stems)
for ``query[i]``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..core.errors import DatasetError
from ..core.registry import DATASETS
from ._common import find_dataset_dir, list_files, missing_dataset_error
from .base import ReidDataset, Sample, fingerprint_samples

OXFORD_SOURCE = ("https://www.robots.ox.ac.uk/~vgg/data/oxbuildings/ (oxbuild_images.tgz and "
                 "gt_files_170407.tgz; Philbin et al., CVPR 2007)")
IMAGE_DIRS = ("jpg", "oxbuild_images")
GT_DIRS = ("gt_files_170407", "gt_files")
QUERY_RE = re.compile(r"^(?P<stem>.+)_query\.txt$")
OXFORD_EXPECTED = {"query": {"images": 55}, "gallery": {"images": 5062}}
PID, CAMID = -2, 0


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: ground-truth file missing (every *_query.txt needs "
                           f"matching _good/_ok/_junk.txt). Re-extract gt_files_170407.tgz.")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


@DATASETS.register("oxford5k")
def load_oxford5k(root: Path) -> ReidDataset:
    """Oxford5k from data root ``root`` (no options)."""
    base = Path(root) / "oxford5k"
    img_dir = find_dataset_dir([base / d for d in IMAGE_DIRS], lambda p: True)
    gt_dir = find_dataset_dir([base / d for d in GT_DIRS], lambda p: True)
    if img_dir is None or gt_dir is None:
        raise missing_dataset_error(
            "oxford5k", [base / d for d in IMAGE_DIRS + GT_DIRS],
            f"{base}/jpg/ (or oxbuild_images/) with the 5,062 .jpg images and "
            f"{base}/gt_files_170407/ with <landmark>_<n>_{{query,good,ok,junk}}.txt",
            OXFORD_SOURCE)
    names = list_files(img_dir, (".jpg",))
    if not names:
        raise DatasetError(f"{img_dir}: no .jpg images. Extract oxbuild_images.tgz there.")
    stems = {n[:-4] for n in names}
    gallery = [Sample(str(img_dir / n), PID, CAMID) for n in names]

    query: list[Sample] = []
    gt: list[dict] = []
    for qname in list_files(gt_dir, ("_query.txt",)):
        qpath = gt_dir / qname
        lines = _read_lines(qpath)
        parts = lines[0].split() if lines else []
        if len(parts) != 5:
            raise DatasetError(f"{qpath}: expected one line '<image> x1 y1 x2 y2' (e.g. "
                               f"'oxc1_all_souls_000013 136.5 34.1 648.5 955.9'), got "
                               f"{lines[:1]!r}. Re-extract gt_files_170407.tgz.")
        stem = parts[0].removeprefix("oxc1_")
        try:
            x1, y1, x2, y2 = (float(v) for v in parts[1:])
        except ValueError:
            raise DatasetError(f"{qpath}: box coordinates {parts[1:]} are not numbers.") from None
        if stem not in stems:
            raise DatasetError(f"{qpath}: query image {stem}.jpg not found in {img_dir}.")
        prefix = QUERY_RE.match(qname).group("stem")
        entry = {"query": stem}
        for kind in ("good", "ok", "junk"):
            entry[kind] = set(_read_lines(gt_dir / f"{prefix}_{kind}.txt"))
        query.append(Sample(str(img_dir / f"{stem}.jpg"), PID, CAMID, bbox=(x1, y1, x2, y2)))
        gt.append(entry)
    if not query:
        raise DatasetError(f"{gt_dir}: no *_query.txt files. Extract gt_files_170407.tgz there.")

    splits = {"train": [], "query": query, "gallery": gallery}
    return ReidDataset(name="oxford5k", root=base, splits=splits,
                       fingerprint=fingerprint_samples(base, splits),
                       meta={"oxford_gt": gt, "expected": OXFORD_EXPECTED})
