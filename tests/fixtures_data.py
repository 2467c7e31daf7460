"""Builders of tiny datasets in the real on-disk layouts, for the data tests.

Each builder writes real image files (small solid-colour JPEGs/PNGs) under a given root and
returns what it wrote, so tests can compare loader output with independent truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_jpg(path: Path, colour=(120, 60, 30), size=(64, 128)) -> Path:
    """A small solid-colour JPEG at ``path`` (``size`` = (w, h))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")
    return path


def market_name(pid: int, cam: int, frame: int) -> str:
    """Market-1501 file name; ``cam`` 1-based; pid -1 written as ``-1``."""
    p = "-1" if pid == -1 else f"{pid:04d}"
    return f"{p}_c{cam}s1_{frame:06d}_00.jpg"


#: (pid, 1-based camera) per split of the Market fixture.
MARKET_FIXTURE = {
    "bounding_box_train": [(2, 1), (2, 3), (2, 3), (7, 2), (7, 6), (11, 4)],
    "query": [(3, 1), (5, 2)],
    "bounding_box_test": [(3, 2), (3, 5), (5, 1), (5, 6), (0, 3), (-1, 1), (-1, 4)],
    "gt_bbox": [(3, 1), (5, 2)],
}


def build_market(dataset_dir: Path, layout: dict | None = None) -> dict[str, list[tuple[int, int]]]:
    """Write a Market-1501-layout fixture into ``dataset_dir`` (the folder that holds
    bounding_box_train/ …); returns folder → [(pid, cam)] as written. A ``Thumbs.db`` like the
    real archive's is added to the train folder."""
    layout = layout or MARKET_FIXTURE
    frame = 0
    for folder, items in layout.items():
        for pid, cam in items:
            frame += 1
            write_jpg(dataset_dir / folder / market_name(pid, cam, frame))
    (dataset_dir / "bounding_box_train" / "Thumbs.db").write_bytes(b"\0" * 16)
    return layout


def duke_name(pid: int, cam: int, frame: int) -> str:
    return f"{pid:04d}_c{cam}_f{frame:07d}.jpg"


DUKE_FIXTURE = {
    "bounding_box_train": [(1, 1), (1, 8), (5, 2), (5, 7)],
    "query": [(9, 3), (12, 4)],
    "bounding_box_test": [(9, 5), (12, 1), (12, 8), (4000, 2)],
}


def build_duke(dataset_dir: Path) -> dict:
    frame = 0
    for folder, items in DUKE_FIXTURE.items():
        for pid, cam in items:
            frame += 1
            write_jpg(dataset_dir / folder / duke_name(pid, cam, frame))
    return DUKE_FIXTURE


def solid(h: int, w: int, seed: int) -> np.ndarray:
    """A deterministic h×w×3 uint8 image."""
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- CUHK03

#: persons per camera-pair group in the fixture, and which (group, person, image) cells are
#: empty (image index 0-based; 0-4 = view 1, 5-9 = view 2).
CUHK_GROUPS = [3, 2]
CUHK_EMPTY = {(1, 2, 7), (1, 2, 8), (1, 2, 9), (2, 1, 0)}


def cuhk_image(g: int, p: int, i: int) -> np.ndarray:
    """The H×W×3 image the fixture stores in cell (group g, person p, image i), 1-based g, p."""
    return solid(12, 6, g * 1000 + p * 10 + i)


def build_cuhk03_mat(path: Path, testsets: list[list[tuple[int, int]]],
                     skip_key: str | None = None) -> None:
    """Write a MATLAB v7.3 (HDF5) ``cuhk-03.mat`` like the real one: 'detected' and 'labeled'
    (1×G cell of 10×persons cells of images stored transposed), 'testsets' (1×20 cell of 2×n
    arrays of 1-based (group, person)). ``skip_key`` leaves one key out."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        counter = [0]

        def put(data, dtype=None):
            counter[0] += 1
            return refs.create_dataset(f"r{counter[0]}", data=data, dtype=dtype).ref

        for key in ("detected", "labeled"):
            if key == skip_key:
                continue
            groups = []
            for g, n in enumerate(CUHK_GROUPS, start=1):
                cell = np.empty((10, n), dtype=h5py.ref_dtype)
                for p in range(1, n + 1):
                    for i in range(10):
                        if (g, p, i) in CUHK_EMPTY:
                            cell[i, p - 1] = put(np.zeros(2, dtype=np.uint64))  # MATLAB's []
                        else:
                            img = cuhk_image(g, p, i) + (1 if key == "labeled" else 0)
                            cell[i, p - 1] = put(img.T)
                groups.append(put(cell, h5py.ref_dtype))
            f.create_dataset(key, data=np.array([groups], dtype=h5py.ref_dtype))
        if skip_key != "testsets":
            ts = [put(np.array(t, dtype=np.float64).T) for t in testsets]
            f.create_dataset("testsets", data=np.array([ts], dtype=h5py.ref_dtype))


def build_cuhk03_new(path: Path, files: list[str], labels: list[int], train: list[int],
                     query: list[int], gallery: list[int], drop: str | None = None) -> None:
    """Write a MATLAB v5 new-protocol config with 1-based index vectors like the real one."""
    from scipy.io import savemat

    d = {"filelist": np.array(files, dtype=object).reshape(-1, 1),
         "labels": np.array(labels, dtype=np.float64).reshape(-1, 1),
         "camId": np.array([int(f.split("_")[2]) for f in files], dtype=np.float64).reshape(-1, 1),
         "train_idx": np.array(train, dtype=np.float64).reshape(-1, 1),
         "query_idx": np.array(query, dtype=np.float64).reshape(-1, 1),
         "gallery_idx": np.array(gallery, dtype=np.float64).reshape(-1, 1)}
    if drop:
        del d[drop]
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, d)


# ----------------------------------------------------------------------------- Oxford5k

OXFORD_IMAGES = ["all_souls_000013", "all_souls_000026", "ashmolean_000000", "ashmolean_000007",
                 "radcliffe_camera_000003", "christ_church_000179"]
OXFORD_GT = {
    "all_souls_1": ("all_souls_000013", (136.5, 34.1, 648.5, 955.9),
                    ["all_souls_000026"], ["all_souls_000013"], ["christ_church_000179"]),
    "ashmolean_1": ("ashmolean_000000", (1.0, 2.0, 30.0, 40.0),
                    ["ashmolean_000007"], [], ["radcliffe_camera_000003"]),
}


def build_oxford(base: Path, image_dir: str = "jpg") -> None:
    """Oxford5k fixture under ``base`` (= <root>/oxford5k): images + gt_files_170407."""
    for i, stem in enumerate(OXFORD_IMAGES):
        write_jpg(base / image_dir / f"{stem}.jpg", colour=(i * 40, 10, 10), size=(700, 1000))
    gt = base / "gt_files_170407"
    gt.mkdir(parents=True)
    for prefix, (q, box, good, ok, junk) in OXFORD_GT.items():
        (gt / f"{prefix}_query.txt").write_text(f"oxc1_{q} " + " ".join(map(str, box)) + "\n")
        for kind, items in (("good", good), ("ok", ok), ("junk", junk)):
            (gt / f"{prefix}_{kind}.txt").write_text("".join(f"{s}\n" for s in items))
