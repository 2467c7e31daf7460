"""The synthetic default dataset: Market layout, determinism, learnable identity signal."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid_bench.core.errors import DatasetError
from reid_bench.data import load_dataset
from reid_bench.data.synthetic import SyntheticOptions, synthetic_dir

SMALL = dict(num_train_ids=6, num_test_ids=5, num_cams=3, images_per_cam=2, queries_per_id=2,
             mq_per_query=1, num_distractors=4, num_junk=3)
MARKET_RE = re.compile(r"^(-1|\d{4})_c\ds\d+_\d{6}_\d{2}\.jpg$")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_counts_ids_cameras_and_layout(tmp_path):
    ds = load_dataset("synthetic", tmp_path, **SMALL)
    assert ds.synthetic and ds.name == "synthetic"
    assert ds.root.name == "Market-1501-v15.09.15"
    for folder in ["bounding_box_train", "bounding_box_test", "query", "gt_bbox"]:
        names = [p.name for p in (ds.root / folder).iterdir()]
        assert names and all(MARKET_RE.match(n) for n in names), folder
    train_ids = {s.pid for s in ds.train}
    test_ids = {s.pid for s in ds.query}
    assert len(train_ids) == 6 and len(test_ids) == 5
    assert not train_ids & test_ids
    assert len(ds.train) == 6 * 3 * 2
    assert len(ds.query) == 5 * 2
    gal = [s.pid for s in ds.gallery]
    assert gal.count(0) == 4 and gal.count(-1) == 3
    assert {p for p in gal if p > 0} == test_ids
    assert len(ds.gallery) == 5 * (3 * 2 - 2) + 4 + 3
    assert len(ds.splits["mq_query"]) == 5 * 2 * 1
    assert {s.camid for s in ds.train} == {0, 1, 2}
    # Each identity's queries come from different cameras, and each has a gallery match in
    # another camera.
    for pid in test_ids:
        qcams = [s.camid for s in ds.query if s.pid == pid]
        assert len(set(qcams)) == len(qcams)
        gcams = {s.camid for s in ds.gallery if s.pid == pid}
        assert all(gcams - {c} for c in qcams)
    # Statistics recorded for data check agree with what was generated.
    exp = ds.meta["expected"]
    for split in ["train", "query", "gallery"]:
        got = ds.splits[split]
        assert exp[split]["images"] == len(got)
        assert exp[split]["ids"] == len({s.pid for s in got if s.pid > 0})
        assert exp[split]["cameras"] == len({s.camid for s in got})
    im = Image.open(ds.train[0].path)
    assert im.size == (64, 128) and im.mode == "RGB"


def test_deterministic_bytes_and_cached(tmp_path):
    a = synthetic_dir(tmp_path / "a", SyntheticOptions(**SMALL))
    b = synthetic_dir(tmp_path / "b", SyntheticOptions(**SMALL))
    assert _digest(a) == _digest(b)
    # Second call reuses the cache (no rewrite: modification times unchanged).
    mtimes = {p: p.stat().st_mtime_ns for p in a.rglob("*.jpg")}
    assert synthetic_dir(tmp_path / "a", SyntheticOptions(**SMALL)) == a
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*.jpg")} == mtimes
    # No temporary folder left behind.
    assert [p.name for p in (tmp_path / "a" / "synthetic").iterdir()] == [a.parent.name]

    # Another seed → other images, other cache folder.
    c = synthetic_dir(tmp_path / "a", SyntheticOptions(**{**SMALL, "seed": 1}))
    assert c != a and _digest(c) != _digest(a)


def test_generated_into_the_cache_not_the_data_root(tmp_path, own_cache):
    root = tmp_path / "data"
    root.mkdir()
    ds = load_dataset("synthetic", root, **SMALL)
    assert list(root.iterdir()) == []
    assert Path(ds.train[0].path).is_relative_to(own_cache / "synthetic")


def test_identity_signal_beats_camera_signal(tmp_path):
    """Independent check that identities are learnable: with a trivial descriptor (mean colour
    of three horizontal bands, per-image normalised to remove illumination scale), the nearest
    other image is far more often the same person than chance, yet images of one person are not
    identical."""
    ds = load_dataset("synthetic", tmp_path, **{**SMALL, "num_train_ids": 12})
    feats, pids = [], []
    for s in ds.train:
        a = np.asarray(Image.open(s.path), dtype=np.float64)
        bands = [a[int(a.shape[0] * lo):int(a.shape[0] * hi), 20:44].reshape(-1, 3).mean(0)
                 for lo, hi in [(0.2, 0.5), (0.6, 0.9)]]
        f = np.concatenate([b / (b.sum() + 1e-6) for b in bands])  # chromaticity
        feats.append(f)
        pids.append(s.pid)
    f = np.array(feats)
    pids = np.array(pids)
    d = ((f[:, None] - f[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    top1 = (pids[d.argmin(1)] == pids).mean()
    assert top1 > 0.5  # chance is about 1/12
    same = pids[:, None] == pids[None]
    np.fill_diagonal(same, False)
    assert d[same].min() > 0


def test_bad_options(tmp_path):
    with pytest.raises(DatasetError, match="queries_per_id"):
        load_dataset("synthetic", tmp_path, num_cams=2, queries_per_id=2)
    with pytest.raises(DatasetError, match="unknown synthetic dataset option"):
        load_dataset("synthetic", tmp_path, num_ids=3)
