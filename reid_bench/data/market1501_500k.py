"""Market-1501+500k: Market-1501 with about 500,000 extra distractor images in the gallery.

``distractors_500k.zip`` (same page as Market-1501) extracts to a folder of .jpg files; it is
looked for as ``bounding_box_distractors/`` or ``images/`` (torchreid's name) inside the Market
folder, or next to it, flat or in sub-folders. All distractors are pid 0; the camera is read
from a ``_c<digit>`` in the file name when present, else -1.

``dataset.streams["distractors"]()`` yields lists of at most ``CHUNK`` samples in one fixed
order that depends only on the file names: every .jpg path (relative to the distractor folder)
sorted, then shuffled by a generator seeded with the loader option ``sample_seed``. The
protocol's smaller galleries take the first n of that order, so "+100k" is a seeded random
sample of the 500k (and lies inside "+200k") on every filesystem; ``os.scandir`` order, which
differs between filesystems, never decides it. The fingerprint covers the Market fingerprint,
the seed and, for every distractor folder, its relative path and its number of .jpg entries:
one directory walk, no file is opened or stat-ed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import DatasetError
from ..core.hashing import short_hash, short_hash_parts
from ..core.registry import DATASETS
from ._common import entry_is, missing_dataset_error
from .base import Sample, published_train_images
from .market1501 import MARKET1501_EXPECTED, MARKET1501_SOURCE, find_market_dir, load_market_layout

CHUNK = 8192
DISTRACTOR_FOLDERS = ("bounding_box_distractors", "images")
CAM_RE = re.compile(r"_c(\d)")
#: Published size ("500K"); data check allows 1% deviation because the exact count is not
#: stated in the paper.
DISTRACTORS_APPROX = 500_000


def find_distractor_dir(market_dir: Path) -> Path:
    """The distractor folder for the Market folder ``market_dir``; DatasetError listing every
    candidate if none exists."""
    cands = [d / f for d in (market_dir, market_dir.parent) for f in DISTRACTOR_FOLDERS]
    for c in cands:
        if c.is_dir():
            return c
    raise missing_dataset_error(
        "market1501_500k (distractors)", cands,
        "the extracted distractors_500k.zip (about 500,000 .jpg files)",
        f"{MARKET1501_SOURCE}, section Market-1501+500k (distractors_500k.zip)")


def _walk(folder: Path, seen: set | None = None) -> Iterator[tuple[str, Iterator[os.DirEntry]]]:
    """(folder, its .jpg entries) for ``folder`` and its sub-folders, sub-folders sorted. A
    folder reached twice (a symlink into an ancestor) or an entry that cannot be followed
    raises DatasetError naming it rather than walking forever."""
    seen = set() if seen is None else seen
    st = os.stat(folder)
    if (st.st_dev, st.st_ino) in seen:
        raise DatasetError(f"{folder}: this folder was already walked (a symlink loop); "
                           "remove or fix the symlink")
    seen.add((st.st_dev, st.st_ino))
    subdirs = []
    jpgs = []
    with os.scandir(folder) as it:
        for e in it:
            if entry_is(e, "dir"):
                subdirs.append(e.path)
            elif e.name.lower().endswith(".jpg"):
                jpgs.append(e)
                if len(jpgs) >= CHUNK:
                    yield str(folder), jpgs
                    jpgs = []
    if jpgs:
        yield str(folder), jpgs
    for d in sorted(subdirs):
        yield from _walk(Path(d), seen)


def distractor_order(folder: Path, seed: int) -> list[str]:
    """Every .jpg path under ``folder`` relative to it, sorted, then permuted by a generator
    seeded with ``seed``: the order the stream yields (first n = the n-distractor subset)."""
    import numpy as np

    names = sorted(os.path.relpath(e.path, folder) for _, entries in _walk(folder)
                   for e in entries)
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order]


def distractor_chunks(folder: Path, seed: int = 0) -> Iterator[list[Sample]]:
    """Samples (pid 0) for every .jpg under ``folder`` in ``distractor_order``, in lists of at
    most CHUNK."""
    names = distractor_order(folder, seed)
    for i in range(0, len(names), CHUNK):
        out = []
        for rel in names[i:i + CHUNK]:
            m = CAM_RE.search(os.path.basename(rel))
            out.append(Sample(os.path.join(str(folder), rel), 0,
                              int(m.group(1)) - 1 if m else -1))
        yield out


def distractor_listing_hash(folder: Path) -> tuple[str, int]:
    """(hash of each sub-folder's relative path and .jpg count, total .jpg count)."""
    counts: dict[str, int] = {}
    for d, entries in _walk(folder):
        rel = os.path.relpath(d, folder)
        counts[rel] = counts.get(rel, 0) + len(entries)
    listing = short_hash_parts(f"{k}\0{v}\n" for k, v in sorted(counts.items()))
    return listing, sum(counts.values())


def distractor_fingerprint(market: str, listing: str, sample_seed: int) -> str:
    """The dataset fingerprint of Market-1501 (``market``) plus its distractors (their
    ``listing`` hash, in the order ``sample_seed`` gives)."""
    return short_hash(f"{market}\0{listing}\0seed={sample_seed}")


@DATASETS.register("market1501_500k",
                   train_images=published_train_images(MARKET1501_EXPECTED))
def load_market1501_500k(root: Path, sample_seed: int = 0):
    """Market-1501 plus the 500k distractor stream, from data root ``root``. ``sample_seed``
    seeds the order of the distractors (see the module docstring). ``meta["num_distractors"]``
    is the number of distractor files found."""
    market_dir = find_market_dir(root)
    dist_dir = find_distractor_dir(market_dir)
    ds = load_market_layout(market_dir, "market1501_500k", synthetic=False,
                            expected=MARKET1501_EXPECTED)
    listing, count = distractor_listing_hash(dist_dir)
    if count == 0:
        raise DatasetError(f"{dist_dir}: no .jpg files. Extract distractors_500k.zip there again.")
    ds.fingerprint = distractor_fingerprint(ds.fingerprint, listing, sample_seed)
    ds.streams["distractors"] = lambda: distractor_chunks(dist_dir, sample_seed)
    ds.meta.update(num_distractors=count, distractor_dir=str(dist_dir), sample_seed=sample_seed,
                   expected={**MARKET1501_EXPECTED,
                             "distractors": {"images_approx": DISTRACTORS_APPROX}})
    return ds
