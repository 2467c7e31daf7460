"""`data check` logic: statistics, unreadable images, missing datasets, and the runner's
pre-training check (``verify_loaded``)."""

from __future__ import annotations

import pytest
from fixtures_data import build_market

from reid_bench.core.errors import DatasetError
from reid_bench.core.registry import DATASETS
from reid_bench.data import load_dataset
from reid_bench.data.check import (
    check_datasets,
    check_one,
    format_check_table,
    split_stats,
    verify_loaded,
)
from reid_bench.data.synthetic import SyntheticOptions

SMALL = dict(num_train_ids=4, num_test_ids=3, num_cams=3, images_per_cam=1, queries_per_id=1,
             mq_per_query=1, num_distractors=2, num_junk=2)


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def test_synthetic_ok_and_market_mismatch(tmp_path):
    row = check_one("synthetic", tmp_path, SMALL)
    assert row["status"] == "ok", row["problems"]
    assert row["stats"]["train"] == {"ids": 4, "images": 12, "cameras": 3}
    assert row["stats"]["gallery"]["images"] == 3 * 2 + 2 + 2
    build_market(tmp_path / "Market-1501")  # a tiny Market: counts cannot match the paper
    row = check_one("market1501", tmp_path, {})
    assert row["status"] == "invalid"
    assert "train: 3 ids, expected 751" in row["problems"]
    assert "gallery: 7 images, expected 19732" in row["problems"]


def test_unreadable_image_found(tmp_path, own_cache):
    row = check_one("synthetic", tmp_path, SMALL)
    victim = sorted((own_cache / "synthetic").rglob("query/*.jpg"))[1]
    _truncate(victim)
    row = check_one("synthetic", tmp_path, SMALL)
    assert row["status"] == "invalid"
    assert any(str(victim) in p and "truncated" in p for p in row["problems"])
    # The runner's check decodes only the first and last image of each split: the middle one
    # passes, the last one fails.
    verify_loaded(load_dataset("synthetic", tmp_path, **SMALL), "synthetic", SMALL)
    last = sorted((own_cache / "synthetic").rglob("query/*.jpg"))[-1]
    _truncate(last)
    with pytest.raises(DatasetError, match=last.name):
        verify_loaded(load_dataset("synthetic", tmp_path, **SMALL), "synthetic", SMALL)


def test_runner_check_counts(tmp_path):
    build_market(tmp_path / "Market-1501")
    ds = load_dataset("market1501", tmp_path)
    with pytest.raises(DatasetError, match="train: 3 ids, expected 751"):
        verify_loaded(ds, "market1501")
    verify_loaded(ds, "market1501", counts=False)  # --subset: counts are not compared


def test_check_datasets_missing_and_table(tmp_path, monkeypatch):
    # Small synthetic options keep the test fast; the default set is covered by the benchmark.
    monkeypatch.setitem(DATASETS.info("synthetic"), "check_variants", [SMALL])
    rows, ok = check_datasets(None, tmp_path)
    by = {r["dataset"]: r for r in rows}
    assert by["market1501"]["status"] == "missing"
    assert str(tmp_path / "Market-1501") in by["market1501"]["problems"][0]
    assert by["cuhk03 (protocol=new, images=labeled)"]["status"] == "missing"
    assert by["imagefolder"]["status"] == "skipped"
    assert by[f"synthetic ({', '.join(f'{k}={v}' for k, v in SMALL.items())})"]["status"] == "ok"
    assert ok  # missing datasets are fine when none was asked for
    rows, ok = check_datasets(["market1501", "synthetic"], tmp_path)
    assert not ok and [r["status"] for r in rows] == ["missing", "ok"]
    table = format_check_table(rows)
    exp = SyntheticOptions(**SMALL).expected()["train"]
    assert f"{exp['ids']}/{exp['images']}/{exp['cameras']}" in table
    assert "market1501 [missing]:" in table and "zheng-lab-anu" in table


def test_split_stats_ignores_distractors_and_junk():
    from reid_bench.data.base import Sample

    s = [Sample("a", 0, 1), Sample("b", -1, 2), Sample("c", 5, 1), Sample("d", 5, -1)]
    assert split_stats(s) == {"ids": 1, "images": 4, "cameras": 2}
