"""Market-1501 (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

On-disk layout (as distributed, and as torchreid unpacks it)::

    Market-1501-v15.09.15/
        bounding_box_train/   12,936 images, 751 ids          -> split "train"
        bounding_box_test/    19,732 images, 750 ids + 0 + -1 -> split "gallery"
        query/                 3,368 images, 750 ids          -> split "query"
        gt_bbox/              hand-drawn boxes (optional)     -> split "mq_query" (multiple query)

File names ``0002_c3s1_000151_00.jpg``: 4-digit person id (``0000`` = distractor, ``-1`` = junk),
camera ``c1``..``c6`` (camid 0..5), sequence ``s1``.., frame, box index. Distractors and junk
keep their labels; the evaluation decides what to do with them.

The layout functions here are reused by every dataset stored the Market way (synthetic, Duke).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DatasetError
from ..core.registry import DATASETS
from ._common import find_dataset_dir, list_files, missing_dataset_error
from .base import ReidDataset, Sample, fingerprint_samples, published_train_images


@dataclass(frozen=True)
class NameFormat:
    """How a Market-style dataset names its files: ``regex`` with groups ``pid`` and ``cam``
    (1-based camera), the number of cameras, and an example name for error messages."""

    regex: re.Pattern[str]
    num_cams: int
    example: str


MARKET_NAMES = NameFormat(
    regex=re.compile(r"^(?P<pid>-1|\d{4})_c(?P<cam>\d)s\d+_\d{6}_\d{2}\.jpg$"),
    num_cams=6,
    example="0002_c3s1_000151_00.jpg",
)

#: Folder → split name, in the order they are read.
MARKET_SPLITS = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}
MQ_FOLDER = "gt_bbox"

#: Published statistics (Zheng et al. 2015, Table 1). "ids" counts real identities (pid > 0):
#: the gallery's distractor label 0 and junk label -1 are not identities.
MARKET1501_EXPECTED: dict[str, dict[str, int]] = {
    "train": {"ids": 751, "images": 12936, "cameras": 6},
    "query": {"ids": 750, "images": 3368, "cameras": 6},
    "gallery": {"ids": 750, "images": 19732, "cameras": 6},
}

MARKET1501_SOURCE = ("https://zheng-lab-anu.github.io/Project/project_reid.html "
                     "(Market-1501-v15.09.15.zip; Zheng et al., ICCV 2015)")


def parse_market_dir(folder: Path, split: str, names: NameFormat = MARKET_NAMES) -> list[Sample]:
    """Samples for every ``.jpg`` in ``folder`` (sorted by name), with pid and 0-based camid read
    from the file name per ``names``. ``split`` only appears in error messages.

    Raises DatasetError naming the first file whose name does not match, or whose camera is out
    of range."""
    folder = Path(folder)
    samples: list[Sample] = []
    for fname in list_files(folder, (".jpg",)):
        m = names.regex.match(fname)
        if m is None:
            raise DatasetError(
                f"{folder / fname}: file name does not follow the {split!r} naming scheme "
                f"(expected e.g. {names.example!r}). Remove or rename the file, or re-extract "
                f"the dataset from its original archive.")
        cam = int(m.group("cam"))
        if not 1 <= cam <= names.num_cams:
            raise DatasetError(
                f"{folder / fname}: camera c{cam} outside c1..c{names.num_cams}. Remove the file "
                f"or re-extract the dataset from its original archive.")
        samples.append(Sample(str(folder / fname), int(m.group("pid")), cam - 1))
    return samples


def load_market_layout(dataset_dir: Path, name: str, synthetic: bool,
                       names: NameFormat = MARKET_NAMES,
                       expected: dict[str, dict[str, int]] | None = None) -> ReidDataset:
    """Read a dataset stored in the Market-1501 layout at ``dataset_dir`` (the folder holding
    bounding_box_train/ etc.) into a ReidDataset named ``name``, with splits train, query,
    gallery and, when ``gt_bbox/`` exists, mq_query. ``expected`` (published statistics, see
    MARKET1501_EXPECTED) is stored as ``meta["expected"]`` for ``data check``.

    Raises DatasetError if a split folder is missing or empty, or a file name is malformed."""
    dataset_dir = Path(dataset_dir)
    splits: dict[str, list[Sample]] = {}
    for folder, split in MARKET_SPLITS.items():
        path = dataset_dir / folder
        if not path.is_dir():
            raise DatasetError(
                f"{path}: folder missing. A {name} dataset at {dataset_dir} needs "
                f"{', '.join(MARKET_SPLITS)}/ (and optionally {MQ_FOLDER}/). The archive may be "
                f"partially extracted: extract it again.")
        samples = parse_market_dir(path, split, names)
        if not samples:
            raise DatasetError(f"{path}: no .jpg images found (expected e.g. {names.example}). "
                               f"The archive may be partially extracted: extract it again.")
        splits[split] = samples
    if (dataset_dir / MQ_FOLDER).is_dir():
        splits["mq_query"] = parse_market_dir(dataset_dir / MQ_FOLDER, "mq_query", names)
    meta = {"expected": expected} if expected else {}
    return ReidDataset(name=name, root=dataset_dir, splits=splits,
                       fingerprint=fingerprint_samples(dataset_dir, splits),
                       synthetic=synthetic, meta=meta)


def market_candidates(root: Path) -> list[Path]:
    """Folders, in search order, where Market-1501 may sit under the data root."""
    root = Path(root)
    return [root / "market1501" / "Market-1501-v15.09.15",  # torchreid
            root / "Market-1501-v15.09.15",
            root / "market1501",
            root / "Market-1501"]


def find_layout_dir(name: str, candidates: list[Path], names: NameFormat, source: str,
                    mq: bool = False) -> Path:
    """The first of ``candidates`` holding a Market-style dataset (``bounding_box_train/``);
    if none does, a DatasetError for dataset ``name`` listing them, the layout (file names
    like ``names.example``; ``mq``: mention the optional gt_bbox/) and the ``source``."""
    found = find_dataset_dir(candidates, "bounding_box_train")
    if found is None:
        raise missing_dataset_error(
            name, candidates,
            "a folder with bounding_box_train/, bounding_box_test/, query/ "
            f"{'(and optionally gt_bbox/) ' if mq else ''}of .jpg files named like "
            f"{names.example}", source)
    return found


def find_market_dir(root: Path) -> Path:
    """The Market-1501 folder under ``root``; DatasetError listing the candidates if absent."""
    return find_layout_dir("market1501", market_candidates(root), MARKET_NAMES,
                           MARKET1501_SOURCE, mq=True)


@DATASETS.register("market1501", train_images=published_train_images(MARKET1501_EXPECTED))
def load_market1501(root: Path) -> ReidDataset:
    """Market-1501 from the data root ``root`` (no options)."""
    return load_market_layout(find_market_dir(root), "market1501", synthetic=False,
                              expected=MARKET1501_EXPECTED)
