"""Market-1501 loader on a fixture in the real layout."""

from __future__ import annotations

from collections import Counter

import pytest
from fixtures_data import MARKET_FIXTURE, build_market, write_jpg

from reid_bench.core.errors import DatasetError
from reid_bench.data import load_dataset
from reid_bench.data.market1501 import parse_market_dir

SPLIT_OF = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery",
            "gt_bbox": "mq_query"}


@pytest.mark.parametrize("sub", ["market1501/Market-1501-v15.09.15", "Market-1501-v15.09.15",
                                 "market1501", "Market-1501"])
def test_finds_each_layout_and_parses_labels(tmp_path, sub):
    build_market(tmp_path / sub)
    ds = load_dataset("market1501", tmp_path)
    assert ds.root == tmp_path / sub
    assert not ds.synthetic
    for folder, items in MARKET_FIXTURE.items():
        got = Counter((s.pid, s.camid) for s in ds.splits[SPLIT_OF[folder]])
        assert got == Counter((pid, cam - 1) for pid, cam in items)
    # Thumbs.db is not an image.
    assert all(s.path.endswith(".jpg") for s in ds.train)
    gallery_pids = {s.pid for s in ds.gallery}
    assert 0 in gallery_pids and -1 in gallery_pids
    assert ds.num_train_pids == 3
    assert ds.meta["expected"]["train"] == {"ids": 751, "images": 12936, "cameras": 6}


def test_gt_bbox_is_optional(tmp_path):
    layout = {k: v for k, v in MARKET_FIXTURE.items() if k != "gt_bbox"}
    build_market(tmp_path / "Market-1501", layout)
    ds = load_dataset("market1501", tmp_path)
    assert "mq_query" not in ds.splits and len(ds.query) == 2


def test_missing_dataset_lists_paths_and_source(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("market1501", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "market1501" / "Market-1501-v15.09.15") in msg
    assert str(tmp_path / "Market-1501") in msg
    assert "bounding_box_test" in msg and "zheng-lab-anu.github.io" in msg


def test_missing_split_folder_named(tmp_path):
    d = tmp_path / "Market-1501"
    build_market(d, {k: v for k, v in MARKET_FIXTURE.items() if k != "query"})
    with pytest.raises(DatasetError, match=str(d / "query")):
        load_dataset("market1501", tmp_path)


@pytest.mark.parametrize("bad", ["002_c3s1_000151_00.jpg", "0002_c7s1_000151_00.jpg",
                                 "0002c3s1_000151_00.jpg", "abc.jpg"])
def test_bad_file_name_named(tmp_path, bad):
    d = tmp_path / "Market-1501"
    build_market(d)
    write_jpg(d / "bounding_box_test" / bad)
    with pytest.raises(DatasetError, match=bad.replace(".", r"\.")):
        load_dataset("market1501", tmp_path)


def test_parse_market_dir_sorted_and_absolute(tmp_path):
    for name in ["0010_c2s3_000200_01.jpg", "-1_c1s1_000001_00.jpg", "0000_c6s2_000100_02.jpg"]:
        write_jpg(tmp_path / name)
    got = parse_market_dir(tmp_path, "gallery")
    assert [(s.pid, s.camid) for s in got] == [(-1, 0), (0, 5), (10, 1)]
    assert all(s.path.startswith(str(tmp_path)) and s.bbox is None for s in got)


def test_fingerprint_changes_with_files(tmp_path):
    d = tmp_path / "Market-1501"
    build_market(d)
    fp1 = load_dataset("market1501", tmp_path).fingerprint
    assert load_dataset("market1501", tmp_path).fingerprint == fp1
    write_jpg(d / "query" / "0009_c4s1_000999_00.jpg")
    assert load_dataset("market1501", tmp_path).fingerprint != fp1
