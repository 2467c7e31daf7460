"""Data roots are only read: derived files go to the cache folder; `data check` names every bad
file (count + the first 20) and decodes everything with --deep; incomplete CUHK03 says which
file is missing."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures_data import build_cuhk03_new
from test_data_check import SMALL
from test_data_cuhk03 import TESTSETS, _all_cells, _name

from reid_bench.cli import main
from reid_bench.core.errors import DatasetError
from reid_bench.data import load_dataset
from reid_bench.data.check import MAX_LISTED, check_one


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _cuhk_root(tmp_path: Path) -> Path:
    from fixtures_data import build_cuhk03_mat

    root = tmp_path / "datasets"
    build_cuhk03_mat(root / "cuhk03" / "cuhk03_release" / "cuhk-03.mat", TESTSETS)
    cells = _all_cells()
    files = [_name(*c) for c in cells]
    labels = [k + 1 for k in range(len(cells))]
    for kind in ("detected", "labeled"):
        build_cuhk03_new(root / "cuhk03" / f"cuhk03_new_protocol_config_{kind}.mat",
                         files, labels, [1, 2, 3], [4, 5], [6, 7, 8])
    return root


def _read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        os.chmod(p, mode)


def test_data_check_cuhk03_on_a_read_only_root(tmp_path):
    root = _cuhk_root(tmp_path)
    _read_only(root)
    before = _tree(root)
    cache = tmp_path / "cache"
    try:
        out = CliRunner().invoke(main, ["data", "check", "cuhk03", "--data-root", str(root),
                                        "--cache-dir", str(cache)], catch_exceptions=False)
    finally:
        for p in [root, *root.rglob("*")]:
            os.chmod(p, p.stat().st_mode | stat.S_IWUSR)
    # The fixture is tiny, so the counts do not match the paper's (exit 1) — but it is checked
    # like any dataset: no OSError, nothing written under the root, images in the cache.
    assert out.exit_code == 1, out.output
    assert "Read-only" not in out.output and "Errno" not in out.output
    assert "train: 3 ids, expected 767" in out.output
    assert _tree(root) == before
    assert {p.name for p in cache.rglob("images_*")} == {"images_detected", "images_labeled"}
    assert len(list(cache.rglob("images_detected/*.png"))) == len(_all_cells())


def test_missing_cuhk03_config_is_named(tmp_path):
    root = _cuhk_root(tmp_path)
    (root / "cuhk03" / "cuhk03_new_protocol_config_labeled.mat").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("cuhk03", root, protocol="new", images="labeled")
    msg = str(e.value)
    assert "incomplete: cuhk03_new_protocol_config_labeled.mat not found" in msg
    assert "cuhk03_new_protocol_config_labeled.mat (MISSING)" in msg
    assert "cuhk-03.mat (found)" in msg
    load_dataset("cuhk03", root, protocol="new", images="detected")  # the other one is fine


def test_every_bad_file_is_counted_and_the_first_20_named(tmp_path, own_cache):
    check_one("synthetic", tmp_path, SMALL)
    images = sorted((own_cache / "synthetic").rglob("*.jpg"))
    garbage, truncated = images[:25], images[25:28]
    for p in garbage:
        p.write_bytes(b"not an image")
    for p in truncated:
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    quick = check_one("synthetic", tmp_path, SMALL, deep=False)
    assert quick["status"] == "invalid"
    assert f"25 unreadable image(s); the first {MAX_LISTED}:" in quick["problems"]
    named = [p for p in quick["problems"] if p.startswith("unreadable image ")]
    assert len(named) == MAX_LISTED == 20
    assert all(str(g) in " ".join(named) for g in garbage[:20])
    # Header-only by default: a truncated JPEG opens; --deep decodes it and finds it.
    deep = check_one("synthetic", tmp_path, SMALL, deep=True, progress=True)
    assert "28 unreadable image(s); the first 20:" in deep["problems"]


def test_validate_prints_each_error_once(tmp_path, repo_root):
    src = (repo_root / "papers" / "lgeu" / "table1.yaml").read_text()
    spec = tmp_path / "papers" / "lgeu" / "table1.yaml"
    spec.parent.mkdir(parents=True)
    # A table-level mistake: every row (and its smoke recipe) inherits it.
    spec.write_text(re.sub(r"\nrecipe:([^\n]*)\n", lambda m: f"\nrecipe:{m[1]}\n  bogus_key: 1\n",
                           src, count=1))
    out = CliRunner().invoke(main, ["validate", str(spec)])
    assert out.exit_code == 1
    assert out.output.count("recipe.bogus_key: unknown key") == 1, out.output
