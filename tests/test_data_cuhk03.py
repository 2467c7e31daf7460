"""CUHK03 loader on .mat fixtures in the real formats (v7.3 HDF5 + v5 new-protocol config)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_data import CUHK_EMPTY, CUHK_GROUPS, build_cuhk03_mat, build_cuhk03_new, cuhk_image
from PIL import Image

from reid_bench.core.errors import DatasetError
from reid_bench.data import load_dataset

# Classic partition k tests identity (group 1, person 2) and (group 2, person k % 2 + 1).
TESTSETS = [[(1, 2), (2, k % 2 + 1)] for k in range(20)]


def _all_cells():
    return [(g, p, i) for g, n in enumerate(CUHK_GROUPS, 1) for p in range(1, n + 1)
            for i in range(10) if (g, p, i) not in CUHK_EMPTY]


def _name(g, p, i):
    return f"{g}_{p:03d}_{1 if i < 5 else 2}_{i + 1:02d}.png"


@pytest.fixture
def cuhk_root(tmp_path):
    build_cuhk03_mat(tmp_path / "cuhk03" / "cuhk03_release" / "cuhk-03.mat", TESTSETS)
    return tmp_path


def _cached(ds) -> Path:
    """The folder the dataset's images were extracted to."""
    return Path(ds.train[0].path).parent


def test_extracts_images_once(cuhk_root, own_cache):
    ds = load_dataset("cuhk03", cuhk_root, protocol="classic", images="detected", split=0)
    img_dir = _cached(ds)
    # Into the cache folder, not the data root.
    assert img_dir.is_relative_to(own_cache) and img_dir.name == "images_detected"
    assert sorted(p.name for p in (cuhk_root / "cuhk03").iterdir()) == ["cuhk03_release"]
    assert sorted(p.name for p in img_dir.iterdir()) == sorted(_name(*c) for c in _all_cells())
    g, p, i = 2, 2, 6
    arr = np.asarray(Image.open(img_dir / _name(g, p, i)))
    assert np.array_equal(arr, cuhk_image(g, p, i))  # pixels and orientation preserved
    lab = load_dataset("cuhk03", cuhk_root, protocol="classic", images="labeled", split=0)
    arr = np.asarray(Image.open(img_dir.parent / "images_labeled" / _name(g, p, i)))
    assert np.array_equal(arr, cuhk_image(g, p, i) + 1)
    mtime = (img_dir / _name(g, p, i)).stat().st_mtime_ns
    load_dataset("cuhk03", cuhk_root, protocol="classic", split=1)
    assert (img_dir / _name(g, p, i)).stat().st_mtime_ns == mtime
    assert ds.fingerprint != lab.fingerprint
    assert not [p for p in img_dir.parent.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize("partition", [0, 1])
def test_classic_partition(cuhk_root, partition):
    ds = load_dataset("cuhk03", cuhk_root, protocol="classic", images="detected", split=partition)
    test = {(1, 2), (2, partition % 2 + 1)}
    # global pid = persons in earlier groups + person index
    gpid = {(g, p): sum(CUHK_GROUPS[:g - 1]) + p for g, n in enumerate(CUHK_GROUPS, 1)
            for p in range(1, n + 1)}
    cells = _all_cells()
    want = {
        "train": sorted((gpid[g, p], 2 * (g - 1) + (i >= 5)) for g, p, i in cells if (g, p) not in test),
        "query": sorted((gpid[g, p], 2 * (g - 1)) for g, p, i in cells if (g, p) in test and i < 5),
        "gallery": sorted((gpid[g, p], 2 * (g - 1) + 1) for g, p, i in cells if (g, p) in test and i >= 5),
    }
    for s, w in want.items():
        assert sorted((x.pid, x.camid) for x in ds.splits[s]) == w
    assert ds.meta["protocol"] == "classic" and ds.meta["expected"]["train"]["ids"] == 1367
    assert ds.meta["partition"] == partition


def test_new_protocol(cuhk_root):
    cells = _all_cells()
    files = [_name(*c) for c in cells]
    labels = [sum(CUHK_GROUPS[:g - 1]) + p for g, p, i in cells]
    train = [k + 1 for k, (g, p, i) in enumerate(cells) if g == 1 and p != 2]
    query = [k + 1 for k, (g, p, i) in enumerate(cells) if (g == 2 or p == 2) and i in (0, 5)]
    gallery = [k + 1 for k, (g, p, i) in enumerate(cells)
               if (g == 2 or p == 2) and i not in (0, 5)]
    build_cuhk03_new(cuhk_root / "cuhk03" / "cuhk03_new_protocol_config_labeled.mat",
                     files, labels, train, query, gallery)
    ds = load_dataset("cuhk03", cuhk_root, protocol="new", images="labeled")
    for split, idx in (("train", train), ("query", query), ("gallery", gallery)):
        got = [(s.path.rsplit("/", 1)[1], s.pid) for s in ds.splits[split]]
        assert got == [(files[k - 1], labels[k - 1]) for k in idx]
        assert all("images_labeled" in s.path for s in ds.splits[split])
    assert {s.pid for s in ds.train} == {1, 3}
    assert ds.meta["expected"]["train"] == {"ids": 767, "images": 7368}


def test_new_protocol_missing_key(cuhk_root):
    build_cuhk03_new(cuhk_root / "cuhk03" / "cuhk03_new_protocol_config_detected.mat",
                     ["1_001_1_01.png"], [1], [1], [1], [1], drop="query_idx")
    with pytest.raises(DatasetError, match=r"config_detected\.mat: missing key\(s\) \['query_idx'\]"):
        load_dataset("cuhk03", cuhk_root, protocol="new")


def test_new_protocol_file_not_extracted(cuhk_root):
    build_cuhk03_new(cuhk_root / "cuhk03" / "cuhk03_new_protocol_config_detected.mat",
                     ["1_001_1_01.png", "1_002_2_08.png"], [1, 2], [1], [2], [1])
    with pytest.raises(DatasetError, match="1_002_2_08.png: image missing"):
        load_dataset("cuhk03", cuhk_root, protocol="new")


def test_wrong_mat_keys(tmp_path):
    mat = tmp_path / "cuhk03" / "cuhk03_release" / "cuhk-03.mat"
    build_cuhk03_mat(mat, TESTSETS, skip_key="labeled")
    with pytest.raises(DatasetError, match=r"cuhk-03\.mat: missing key\(s\) \['labeled'\]"):
        load_dataset("cuhk03", tmp_path, protocol="classic")


def test_not_hdf5(tmp_path):
    mat = tmp_path / "cuhk03" / "cuhk03_release" / "cuhk-03.mat"
    mat.parent.mkdir(parents=True)
    mat.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 200)
    with pytest.raises(DatasetError, match="not a readable MATLAB v7.3"):
        load_dataset("cuhk03", tmp_path, protocol="classic")


def test_missing_files_and_bad_options(tmp_path, cuhk_root):
    with pytest.raises(DatasetError) as e:
        load_dataset("cuhk03", tmp_path / "nowhere")
    msg = str(e.value)
    assert "cuhk03_release/cuhk-03.mat" in msg and "cuhk03_new_protocol_config_detected.mat" in msg
    assert "CUHK_identification" in msg
    with pytest.raises(DatasetError, match="0..19"):
        load_dataset("cuhk03", cuhk_root, protocol="classic", split=20)
    with pytest.raises(DatasetError, match="protocol"):
        load_dataset("cuhk03", cuhk_root, protocol="old")
    with pytest.raises(DatasetError, match="images"):
        load_dataset("cuhk03", cuhk_root, protocol="classic", images="both")


@pytest.mark.parametrize("view", [1, 2, "both"])
def test_classic_query_views(cuhk_root, view):
    """query_view 1/2: the queries come from that view, the gallery from the other; "both"
    (Deep-Person's released code): every test image is a query and a gallery image."""
    ds = load_dataset("cuhk03", cuhk_root, protocol="classic", images="detected", split=0,
                      query_view=view)
    q = sorted((s.pid, s.camid) for s in ds.query)
    g = sorted((s.pid, s.camid) for s in ds.gallery)
    if view == "both":
        assert q == g and {c % 2 for _, c in q} == {0, 1}
    else:
        assert {c % 2 for _, c in q} == {view - 1} and {c % 2 for _, c in g} == {2 - view}
    assert ds.meta["gallery_other_cameras"] and ds.meta["query_view"] == view


def test_gallery_stats_declaration():
    from reid_bench.core.registry import DATASETS
    from reid_bench.data.base import GalleryStats

    stats = DATASETS.info("cuhk03")["gallery_stats"]
    assert stats({"protocol": "classic", "query_view": 1}) == GalleryStats(100, (1, 5), 500)
    assert stats({"protocol": "classic", "query_view": "both"}).images == 1000
    assert stats({"protocol": "new"}) is None
