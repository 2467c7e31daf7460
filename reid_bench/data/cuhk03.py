"""CUHK03 (Li et al., "DeepReID: Deep Filter Pairing Neural Network for Person
Re-identification", CVPR 2014), classic and new (Zhong et al., CVPR 2017) protocols.

On disk (torchreid's layout)::

    <root>/cuhk03/cuhk03_release/cuhk-03.mat                    MATLAB v7.3 (HDF5)
    <root>/cuhk03/cuhk03_new_protocol_config_detected.mat       MATLAB v5 (new protocol only)
    <root>/cuhk03/cuhk03_new_protocol_config_labeled.mat

``cuhk-03.mat`` holds ``detected`` and ``labeled``: cell arrays of 5 camera-pair groups, each a
(persons × 10) cell of H×W×3 images (1-5 from the pair's first camera, 6-10 from the second;
empty cells where a view is missing), and ``testsets``: the test identities of the 20 classic
partitions, each 100 (group, person) rows, 1-based. The images are extracted once into
``<root>/cuhk03/images_<detected|labeled>/`` as ``<group>_<person:03d>_<view>_<image:02d>.png``
(torchreid's names, which the new-protocol ``filelist`` uses), built atomically. The data root
is only read: the PNGs go to the cache folder (``reid_bench.core.cache_dir``), under
``<cache>/cuhk03/<key>/images_<detected|labeled>/`` with ``key`` a hash of the ``.mat`` file's
path, size and modification time; a folder ``<root>/cuhk03/images_<...>/`` that already exists
(extracted by torchreid or an earlier version) is used as it is.

Labels: pid = global 1-based identity (the identity's rank counting group by group, which is
also what the new protocol's ``labels`` holds); camid = 2·(group−1) + (view−1), 0..9, so the
two cameras of every pair are distinct.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..core.atomic import build_dir
from ..core.cache_dir import resolve_cache_dir
from ..core.errors import DatasetError
from ..core.hashing import short_hash
from ..core.registry import DATASETS
from ._common import missing_dataset_error
from .base import GalleryStats, ReidDataset, Sample, fingerprint_samples

CUHK03_SOURCE = ("http://www.ee.cuhk.edu.hk/~xgwang/CUHK_identification.html (cuhk03_release.zip; "
                 "Li et al., CVPR 2014); new-protocol .mat files: "
                 "https://github.com/zhunzhong07/person-re-ranking/tree/master/evaluation/data/CUHK03")
NAME_RE = re.compile(r"^(?P<group>[1-9])_(?P<pid>\d{3})_(?P<view>[12])_(?P<img>\d{2})\.png$")
NEW_KEYS = ("train_idx", "query_idx", "gallery_idx", "labels", "filelist")

#: New protocol (Zhong et al. 2017, CUHK03-NP); classic: 1,367 train / 100 test ids per
#: partition, image counts vary by partition.
CUHK03_EXPECTED = {
    ("new", "labeled"): {"train": {"ids": 767, "images": 7368},
                         "query": {"ids": 700, "images": 1400},
                         "gallery": {"ids": 700, "images": 5328}},
    ("new", "detected"): {"train": {"ids": 767, "images": 7365},
                          "query": {"ids": 700, "images": 1400},
                          "gallery": {"ids": 700, "images": 5332}},
    ("classic", "labeled"): {"train": {"ids": 1367}, "query": {"ids": 100}, "gallery": {"ids": 100}},
    ("classic", "detected"): {"train": {"ids": 1367}, "query": {"ids": 100}, "gallery": {"ids": 100}},
}


def _open_v73(mat_path: Path):
    import h5py

    try:
        f = h5py.File(mat_path, "r")
    except OSError as e:
        raise DatasetError(f"{mat_path}: not a readable MATLAB v7.3 (HDF5) file ({e}). Re-extract "
                           f"cuhk03_release.zip from {CUHK03_SOURCE}.") from e
    missing = [k for k in ("detected", "labeled", "testsets") if k not in f]
    if missing:
        keys = sorted(f.keys())
        f.close()
        raise DatasetError(f"{mat_path}: missing key(s) {missing} (found {keys}); expected "
                           f"'detected', 'labeled', 'testsets'. The file is not the original "
                           f"cuhk-03.mat: re-extract cuhk03_release.zip.")
    return f


def _group_sizes(mat, images: str) -> list[int]:
    """Persons per camera-pair group (cells are stored transposed: (10, persons))."""
    return [int(mat[ref].shape[-1]) for ref in mat[images][0]]


def _extract(mat, images: str, out: Path) -> None:
    """Write every non-empty image cell of ``mat[images]`` as PNG into ``out``."""
    from PIL import Image

    for g, gref in enumerate(mat[images][0], start=1):
        cell = mat[gref][:].T  # (persons, 10) object references
        for p in range(cell.shape[0]):
            for i in range(cell.shape[1]):
                img = mat[cell[p, i]][:].T  # stored as (3, W, H)
                if img.ndim < 3 or img.size == 0:
                    continue  # that view is missing for this person
                view = 1 if i < 5 else 2
                Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)).save(
                    out / f"{g}_{p + 1:03d}_{view}_{i + 1:02d}.png")


def _image_dir(base: Path, mat_path: Path, images: str) -> Path:
    """Where the extracted PNGs of ``images`` are: an existing ``<base>/images_<images>``
    (read-only use), else a folder in the cache keyed by the .mat file's identity."""
    legacy = base / f"images_{images}"
    if legacy.is_dir():
        return legacy
    st = mat_path.stat()
    key = short_hash(f"{mat_path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}")
    return resolve_cache_dir() / "cuhk03" / key / f"images_{images}"


def _camid(group: int, view: int) -> int:
    return 2 * (group - 1) + (view - 1)


# CUHK03 as released: 14,097 images of 1,467 identities. The classic protocol's training split
# (1,367 ids) has a per-partition image count; about the ids' share of the images.
CUHK03_IMAGES, CUHK03_IDS = 14097, 1467


def _train_images(options: dict) -> tuple[int | None, str]:
    """Training images of the protocol and image kind in ``options``, by the published
    statistics (an approximation, said in the note, where only the ids are published)."""
    key = (options.get("protocol", "new"), options.get("images", "detected"))
    train = CUHK03_EXPECTED.get(key, {}).get("train", {})
    if "images" in train:
        return train["images"], ""
    if "ids" in train:
        n = round(CUHK03_IMAGES * train["ids"] / CUHK03_IDS)
        return n, f"≈ {train['ids']:,} of {CUHK03_IDS:,} ids' share of {CUHK03_IMAGES:,} images"
    return None, ""


def _gallery_stats(options: dict):
    """Classic protocol: 100 test identities; every identity has at most 5 images per camera
    view (cuhk-03.mat: columns 1-5 and 6-10), so a query's identity has 1-5 images in the other
    view and the gallery at most 5 (views 1, 2) or 10 (``both``: every other camera) images per
    identity. The new protocol's statistics do not bound a query's matches: None."""
    if options.get("protocol", "new") != "classic":
        return None
    per_id = 10 if options.get("query_view", 1) == "both" else 5
    return GalleryStats(ids=100, matches=(1, 5), images=100 * per_id)


# `data check` checks the new protocol's two image kinds (the classic one uses the same files).
@DATASETS.register("cuhk03", check_variants=[{"protocol": "new", "images": "detected"},
                                             {"protocol": "new", "images": "labeled"}],
                   train_images=_train_images, gallery_stats=_gallery_stats)
def load_cuhk03(root: Path, protocol: str = "new", images: str = "detected",
                split: int = 0, query_view: int = 1) -> ReidDataset:
    """CUHK03 from data root ``root``.

    ``protocol``: "new" (767 train / 700 test ids, Zhong et al. 2017; one partition) or
    "classic" (20 partitions of 1,367 train / 100 test ids; query = the test ids' images from
    camera view ``query_view`` of the pair, gallery = those from the other view; the papers
    only say "the other camera", so specs mark the view as assumed; ``"both"``: every test
    image is a query and a gallery image, and the protocol ranks each query against the
    images of the other cameras only, as open-reid's ``separate_camera_set``, the evaluation of
    Deep-Person's released code). ``split``: the partition
    index, 0..19 for classic, 0 for new (the option keeps the name of the cell's ``split``
    that the runner fills it from, and of the spec's ``splits:``; it is part of the cells'
    config hashes). ``images``: "detected" (DPM boxes) or "labeled" (hand-drawn boxes)."""
    if query_view not in (1, 2, "both"):
        raise DatasetError(f"cuhk03 option query_view={query_view!r}: use 1 or 2 (the camera "
                           "view of each pair the classic protocol queries come from) or "
                           "'both' (every test image is a query and a gallery image).")
    if protocol not in ("new", "classic"):
        raise DatasetError(f"cuhk03 option protocol={protocol!r}: use 'new' or 'classic'.")
    if images not in ("detected", "labeled"):
        raise DatasetError(f"cuhk03 option images={images!r}: use 'detected' or 'labeled'.")
    base = Path(root) / "cuhk03"
    mat_path = base / "cuhk03_release" / "cuhk-03.mat"
    new_path = base / f"cuhk03_new_protocol_config_{images}.mat"
    needed = [mat_path] + ([new_path] if protocol == "new" else [])
    absent = [p for p in needed if not p.is_file()]
    if absent:
        raise missing_dataset_error(
            "cuhk03", needed,
            "cuhk03_release/cuhk-03.mat (from cuhk03_release.zip) under <data root>/cuhk03/"
            + (f", and {new_path.name} next to cuhk03_release/" if protocol == "new" else ""),
            CUHK03_SOURCE, missing=absent)

    img_dir = _image_dir(base, mat_path, images)
    with _open_v73(mat_path) as mat:
        try:
            build_dir(img_dir, lambda tmp: _extract(mat, images, tmp))
        except OSError as e:
            raise DatasetError(f"cannot extract the CUHK03 images into {img_dir}: {e}. Point "
                               f"--cache-dir / $REID_BENCH_CACHE at a writable folder.") from e
        offsets = np.concatenate([[0], np.cumsum(_group_sizes(mat, images))])
        partitions = [mat[ref][:].T.astype(int) for ref in mat["testsets"][0]]
    on_disk = set(os.listdir(img_dir))

    def sample(name: str, pid: int | None = None) -> Sample:
        m = NAME_RE.match(name)
        if m is None:
            raise DatasetError(f"{img_dir / name}: unexpected image name (expected e.g. "
                               f"1_001_1_01.png). Delete {img_dir} to re-extract the images.")
        if name not in on_disk:
            raise DatasetError(f"{img_dir / name}: image missing from the extracted cache. Delete "
                               f"{img_dir} so it is extracted again from {mat_path}.")
        g, view = int(m["group"]), int(m["view"])
        if pid is None:
            pid = int(offsets[g - 1]) + int(m["pid"])
        return Sample(str(img_dir / name), pid, _camid(g, view))

    partition = split
    if protocol == "classic":
        if not 0 <= partition < len(partitions):
            raise DatasetError(f"cuhk03 option split={partition}: the classic protocol has "
                               f"{len(partitions)} partitions, 0..{len(partitions) - 1}.")
        splits = _classic_partition(on_disk, partitions[partition], query_view, sample)
    else:
        if partition != 0:
            raise DatasetError(f"cuhk03 option split={partition}: the new protocol has one "
                               "partition (0).")
        splits = _new_protocol(new_path, sample)

    return ReidDataset(name="cuhk03", root=base, splits=splits,
                       # Relative to the images_<kind> parent: the same files give the same
                       # fingerprint wherever the cache is.
                       fingerprint=fingerprint_samples(img_dir.parent, splits),
                       meta={"protocol": protocol, "images": images, "partition": partition,
                             "expected": CUHK03_EXPECTED[(protocol, images)],
                             # Classic: queries meet only other cameras' images (with views 1
                             # and 2 the gallery is the other view anyway).
                             "gallery_other_cameras": protocol == "classic",
                             "query_view": query_view})


def _classic_partition(on_disk: set[str], test_ids, query_view: int,
                       sample) -> dict[str, list[Sample]]:
    """Splits of one classic partition: its ``test_ids`` ((group, person) rows) are query
    (view ``query_view``) and gallery (the other view), or both (``"both"``: each test image
    in query and gallery), every other identity is train."""
    test = {(int(g), int(p)) for g, p in test_ids}
    splits: dict[str, list[Sample]] = {"train": [], "query": [], "gallery": []}
    for name in sorted(on_disk):
        m = NAME_RE.match(name)
        if m is None:
            continue  # not one of ours (e.g. a stray file); never part of a split
        key = (int(m["group"]), int(m["pid"]))
        if key not in test:
            splits["train"].append(sample(name))
        elif query_view == "both":
            splits["query"].append(sample(name))
            splits["gallery"].append(sample(name))
        else:
            splits["query" if m["view"] == str(query_view) else "gallery"].append(sample(name))
    return splits


def _new_protocol(path: Path, sample) -> dict[str, list[Sample]]:
    """Splits from a CUHK03-NP config (.mat v5): 1-based ``*_idx`` into ``filelist``/``labels``."""
    from scipy.io import loadmat

    try:
        cfg = loadmat(path)
    except Exception as e:  # scipy raises ValueError/TypeError/NotImplementedError variously
        raise DatasetError(f"{path}: not a readable MATLAB v5 file ({e}). Download it again "
                           f"from {CUHK03_SOURCE}.") from e
    missing = [k for k in NEW_KEYS if k not in cfg]
    if missing:
        found = sorted(k for k in cfg if not k.startswith("__"))
        raise DatasetError(f"{path}: missing key(s) {missing} (found {found}); expected "
                           f"{list(NEW_KEYS)}. Download the file again from {CUHK03_SOURCE}.")
    files = [str(np.ravel(f)[0]) for f in cfg["filelist"].ravel()]
    labels = cfg["labels"].ravel().astype(int)
    out = {}
    for split, key in (("train", "train_idx"), ("query", "query_idx"), ("gallery", "gallery_idx")):
        idx = cfg[key].ravel().astype(int) - 1
        if idx.size and (idx.min() < 0 or idx.max() >= len(files)):
            raise DatasetError(f"{path}: {key} holds indices outside 1..{len(files)} "
                               f"(the filelist length). Download the file again.")
        out[split] = [sample(files[i], int(labels[i])) for i in idx]
    return out
