"""DukeMTMC-reID, Market-1501+500k, Oxford5k and imagefolder loaders on real-layout fixtures."""

from __future__ import annotations

from collections import Counter

import pytest
from fixtures_data import (
    DUKE_FIXTURE,
    MARKET_FIXTURE,
    OXFORD_GT,
    OXFORD_IMAGES,
    build_duke,
    build_market,
    build_oxford,
    write_jpg,
)

from reid_bench.core.errors import DatasetError
from reid_bench.data import load_dataset
from reid_bench.data import market1501_500k as m500


@pytest.mark.parametrize("sub", ["dukemtmc-reid/DukeMTMC-reID", "DukeMTMC-reID"])
def test_duke(tmp_path, sub):
    build_duke(tmp_path / sub)
    ds = load_dataset("dukemtmc", tmp_path)
    split_of = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}
    for folder, items in DUKE_FIXTURE.items():
        got = Counter((s.pid, s.camid) for s in ds.splits[split_of[folder]])
        assert got == Counter((p, c - 1) for p, c in items)
    assert ds.meta["expected"]["gallery"]["ids"] == 1110


def test_duke_rejects_market_names_and_missing(tmp_path):
    with pytest.raises(DatasetError, match="DukeMTMC-reID_evaluation"):
        load_dataset("dukemtmc", tmp_path)
    build_duke(tmp_path / "DukeMTMC-reID")
    write_jpg(tmp_path / "DukeMTMC-reID" / "query" / "0002_c9_f0000001.jpg")
    with pytest.raises(DatasetError, match="0002_c9_f0000001.jpg: camera c9 outside c1..c8"):
        load_dataset("dukemtmc", tmp_path)


@pytest.mark.parametrize("folder", ["bounding_box_distractors", "images"])
def test_market_500k_streams_chunks(tmp_path, monkeypatch, folder):
    market = tmp_path / "market1501" / "Market-1501-v15.09.15"
    build_market(market)
    dist = market / folder
    names = [f"{i:08d}_c{i % 6 + 1}s1_000000_00.jpg" for i in range(7)]
    for n in names[:4]:
        write_jpg(dist / n)
    for n in names[4:]:
        write_jpg(dist / "sub" / n)
    write_jpg(dist / "sub" / "nocamera.jpg")
    (dist / "readme.txt").write_text("not an image")
    monkeypatch.setattr(m500, "CHUNK", 3)
    ds = load_dataset("market1501_500k", tmp_path)
    assert ds.meta["num_distractors"] == 8
    chunks = list(ds.streams["distractors"]())
    assert [len(c) for c in chunks] == [3, 3, 2]
    flat = [s for c in chunks for s in c]
    got = {s.path.rsplit("/", 1)[1]: (s.pid, s.camid) for s in flat}
    want = {n: (0, i % 6) for i, n in enumerate(names)} | {"nocamera.jpg": (0, -1)}
    assert got == want
    # Market part unchanged
    assert len(ds.query) == len(MARKET_FIXTURE["query"])
    # Fingerprint follows the distractor listing without opening files.
    fp = ds.fingerprint
    assert load_dataset("market1501_500k", tmp_path).fingerprint == fp
    write_jpg(dist / "sub" / "extra_c1.jpg")
    assert load_dataset("market1501_500k", tmp_path).fingerprint != fp
    assert fp != load_dataset("market1501", tmp_path).fingerprint


def test_market_500k_missing_distractors(tmp_path):
    build_market(tmp_path / "Market-1501")
    with pytest.raises(DatasetError) as e:
        load_dataset("market1501_500k", tmp_path)
    assert str(tmp_path / "Market-1501" / "bounding_box_distractors") in str(e.value)
    assert "distractors_500k.zip" in str(e.value)


@pytest.mark.parametrize("image_dir", ["jpg", "oxbuild_images"])
def test_oxford(tmp_path, image_dir):
    build_oxford(tmp_path / "oxford5k", image_dir)
    ds = load_dataset("oxford5k", tmp_path)
    assert ds.train == []
    assert [s.path.rsplit("/", 1)[1][:-4] for s in ds.gallery] == sorted(OXFORD_IMAGES)
    assert [s.path.rsplit("/", 1)[1][:-4] for s in ds.query] == ["all_souls_000013", "ashmolean_000000"]
    assert ds.query[0].bbox == (136.5, 34.1, 648.5, 955.9)
    assert {(s.pid, s.camid) for s in ds.query + ds.gallery} == {(-2, 0)}
    for entry, (_prefix, (q, _, good, ok, junk)) in zip(ds.meta["oxford_gt"], sorted(OXFORD_GT.items()), strict=True):
        assert entry == {"query": q, "good": set(good), "ok": set(ok), "junk": set(junk)}


def test_oxford_errors(tmp_path):
    with pytest.raises(DatasetError, match="robots.ox.ac.uk"):
        load_dataset("oxford5k", tmp_path)
    base = tmp_path / "oxford5k"
    build_oxford(base)
    (base / "gt_files_170407" / "ashmolean_1_ok.txt").unlink()
    with pytest.raises(DatasetError, match="ashmolean_1_ok.txt: ground-truth file missing"):
        load_dataset("oxford5k", tmp_path)
    build_oxford(tmp_path / "o2" / "oxford5k")
    (tmp_path / "o2" / "oxford5k" / "gt_files_170407" / "all_souls_1_query.txt").write_text("oxc1_all_souls_000013 1 2\n")
    with pytest.raises(DatasetError, match=r"all_souls_1_query.txt: expected one line"):
        load_dataset("oxford5k", tmp_path / "o2")


def test_imagefolder(tmp_path):
    for cls, n in (("b_tower", 2), ("a_bridge", 3)):
        for i in range(n):
            write_jpg(tmp_path / "lm" / cls / f"{i}.jpg")
    (tmp_path / "lm" / "empty").mkdir()
    (tmp_path / "lm" / "a_bridge" / "notes.txt").write_text("x")
    ds = load_dataset("imagefolder", tmp_path, path="lm")
    assert Counter(s.pid for s in ds.train) == {1: 3, 2: 2}
    assert ds.meta["classes"] == ["a_bridge", "b_tower"] and ds.meta["empty_classes"] == ["empty"]
    assert ds.query == [] and ds.gallery == []
    assert load_dataset("imagefolder", tmp_path, path=str(tmp_path / "lm")).fingerprint == ds.fingerprint
    with pytest.raises(DatasetError, match="needs the option path"):
        load_dataset("imagefolder", tmp_path)
    with pytest.raises(DatasetError, match="is not a folder"):
        load_dataset("imagefolder", tmp_path, path="nope")
