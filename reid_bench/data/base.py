"""The records every dataset loader returns, and the entry point the runner calls.

A loader is a function registered in ``registry.DATASETS`` under the name specs use::

    @DATASETS.register("market1501")
    def load_market1501(root: Path, **options) -> ReidDataset: ...

``register`` may also declare ``check_variants``: the option sets ``reid-bench data check``
checks the dataset with (default: once with default options; ``[]``: no default location,
skipped); and ``train_images``: ``options -> (training images or None, note)`` by the
published statistics, for ``run --dry-run`` estimates (default: counted on disk); and
``gallery_stats``: ``options -> GalleryStats | None``, what the published statistics guarantee
about the test gallery (``validate --consistency`` bounds a printed mAP with it; default: nothing
stated, the check says "not decidable").

``root`` is the data root (``--data-root`` / ``$REID_BENCH_DATA`` / ``./data``); the loader looks
for its own sub-folder(s) under it and raises ``DatasetError`` naming every path it looked at,
what it expected there and where the dataset is officially obtained.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.hashing import short_hash_parts
from ..core.registry import DATASETS


@dataclass(frozen=True)
class Sample:
    """One image: absolute ``path``, identity ``pid`` as the dataset names it (Market: 0 =
    distractor, -1 = junk), 0-based camera ``camid``; ``bbox`` = (x1, y1, x2, y2) crop for
    retrieval queries (Oxford5k), else None."""

    path: str
    pid: int
    camid: int
    bbox: tuple[float, float, float, float] | None = None


@dataclass
class ReidDataset:
    """A loaded dataset.

    ``splits`` maps split name → samples. Every re-id dataset has ``train``, ``query`` and
    ``gallery``; others add what their protocols need (Market ``mq_query`` = gt_bbox images for
    multiple query). ``streams`` maps split name → a callable returning an iterator over chunks
    of samples, for splits too large to list in memory (Market+500k distractors).
    ``meta`` carries protocol data that is not per-sample (Oxford5k ground truth, CUHK03 partition
    index). ``fingerprint`` is a stable hash of the file list (see ``fingerprint_samples``).
    """

    name: str
    root: Path
    splits: dict[str, list[Sample]]
    fingerprint: str
    synthetic: bool = False
    streams: dict[str, Callable[[], Iterator[list[Sample]]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def train(self) -> list[Sample]:
        return self.splits["train"]

    @property
    def query(self) -> list[Sample]:
        return self.splits["query"]

    @property
    def gallery(self) -> list[Sample]:
        return self.splits["gallery"]

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.splits.get("train", [])})


def fingerprint_samples(root: Path, splits: dict[str, Sequence[Sample]]) -> str:
    """Hash of (split, relative path, pid, camid, file size) for every sample: changes when a
    file is added, removed, relabelled or replaced by one of another size."""
    def lines() -> Iterator[str]:
        for split in sorted(splits):
            for s in splits[split]:
                try:
                    rel = os.path.relpath(s.path, root)
                    size = os.path.getsize(s.path)
                except (OSError, ValueError):
                    rel, size = s.path, -1
                yield f"{split}\0{rel}\0{s.pid}\0{s.camid}\0{size}\n"

    return short_hash_parts(lines())


@dataclass(frozen=True)
class GalleryStats:
    """What a dataset's published statistics guarantee about its test gallery: ``ids``
    identities, between ``matches[0]`` and ``matches[1]`` images of a query's identity in the
    gallery it is ranked against (after the protocol's junk rule), at most ``images`` gallery
    images in all."""

    ids: int
    matches: tuple[int, int]
    images: int


def published_train_images(expected: dict[str, dict[str, int]]
                           ) -> Callable[[dict], tuple[int | None, str]]:
    """The ``train_images`` declaration of a dataset whose statistics ``expected`` (split →
    ids/images) do not depend on loader options."""
    return lambda options: (expected["train"]["images"], "")


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """``--data-root`` if given, else ``$REID_BENCH_DATA``, else ``./data``."""
    if data_root:
        return Path(data_root).expanduser().resolve()
    env = os.environ.get("REID_BENCH_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return Path("data").resolve()


def load_dataset(name: str, root: str | os.PathLike | None = None, **options: Any) -> ReidDataset:
    """Load the registered dataset ``name`` from the data root with loader ``options``."""
    loader = DATASETS.get(name)
    return loader(resolve_data_root(root), **options)
