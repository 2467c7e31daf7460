"""Converted weights live in the one cache folder (``core.cache_dir``): ``<cache dir>/weights``,
under ``--cache-dir`` / ``$REID_BENCH_CACHE`` like every other derived file. The folder of
0.1.0 (``~/.cache/reid_bench/weights``) is still read for one release, with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from reid_bench.cli import main
from reid_bench.core.cache_dir import ENV, use_cache_dir
from reid_bench.weights import store


@pytest.fixture
def cache(no_caches, monkeypatch) -> Path:
    path = no_caches / "my-cache"
    monkeypatch.setenv(ENV, str(path))
    return path


@pytest.mark.parametrize("how", ["env", "--cache-dir"])
def test_converted_weights_are_found_under_the_cache_dir(no_caches, monkeypatch, how):
    cache = no_caches / f"cache-{how}"
    monkeypatch.setenv(ENV, str(no_caches / "elsewhere"))  # restored after the test
    if how == "env":
        monkeypatch.setenv(ENV, str(cache))
    else:  # what `run --cache-dir` does before it runs a cell
        use_cache_dir(cache)
    file = cache / "weights" / "caffenet.safetensors"
    assert store.locate("caffenet") is None
    file.parent.mkdir(parents=True)
    file.write_bytes(b"x")
    hit = store.locate("caffenet")
    assert hit is not None and hit.path == file and hit.how == store.OWN_CACHE
    res = CliRunner().invoke(main, ["weights", "path", "caffenet"])
    assert res.exit_code == 0 and res.output.strip() == str(file)


def test_weights_convert_writes_under_the_cache_dir(cache, tmp_path, monkeypatch):
    from reid_bench.weights import caffe

    def fake_convert(src, dest, expected_sha1=None):  # the conversion itself: test_weights.py
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(b"converted")
        return Path(dest)

    monkeypatch.setattr(caffe, "convert_caffenet", fake_convert)
    src = tmp_path / "bvlc_reference_caffenet.caffemodel"
    src.write_bytes(b"model")
    res = CliRunner().invoke(main, ["weights", "convert", "caffenet", str(src)])
    assert res.exit_code == 0, res.output
    assert (cache / "weights" / "caffenet.safetensors").read_bytes() == b"converted"
    assert store.locate("caffenet").path == cache / "weights" / "caffenet.safetensors"
    assert not store.old_cache_dir().exists()


def test_old_weights_folder_is_read_with_a_warning_and_the_new_one_wins(cache, no_caches,
                                                                        caplog):
    old = no_caches / "xdg" / "reid_bench" / "weights" / "caffenet.safetensors"
    assert store.old_cache_dir() == old.parent
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    with caplog.at_level(logging.WARNING, logger=store.__name__):
        hit = store.locate("caffenet")
        store.locate("caffenet")  # warned once per file and process
    assert hit.path == old and hit.how == store.OLD_CACHE
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and str(old) in warned[0] and str(cache / "weights") in warned[0]
    new = cache / "weights" / "caffenet.safetensors"
    new.parent.mkdir(parents=True)
    new.write_bytes(b"new")
    assert store.locate("caffenet").path == new
    assert old.read_bytes() == b"old"


def test_weights_list_shows_both_folders(cache, no_caches, repo_root):
    res = CliRunner().invoke(main, ["weights", "list", "--specs",
                                    str(repo_root / "papers/verif_identif/table2.yaml")])
    assert res.exit_code == 0, res.output
    assert str(cache / "weights" / "caffenet.safetensors") in res.output
    assert str(store.old_cache_dir() / "caffenet.safetensors") in res.output
