"""Cached artefacts: built once, published atomically, keyed by config and code."""

import pytest

from reid_bench.artifacts import ArtifactCache
from reid_bench.registry import METHODS


def test_built_once_then_reused(tmp_path):
    cache, calls = ArtifactCache(tmp_path), []

    def build(d):
        calls.append(d)
        (d / "w.txt").write_text("x")

    a = cache.get_or_create("stage1", {"lr": 0.1}, build)
    b = cache.get_or_create("stage1", {"lr": 0.1}, build)
    c = cache.get_or_create("stage1", {"lr": 0.2}, build)
    assert a == b != c and len(calls) == 2 and (a / "w.txt").read_text() == "x"


def test_failed_build_publishes_nothing(tmp_path):
    cache = ArtifactCache(tmp_path)

    def boom(d):
        (d / "half.txt").write_text("partial")
        raise RuntimeError("crash mid-build")

    with pytest.raises(RuntimeError):
        cache.get_or_create("stage1", {"a": 1}, boom)
    assert not cache.exists("stage1", {"a": 1})
    assert not list((tmp_path / "stage1").glob("*/half.txt"))


def test_code_salt_separates_artefacts_and_refresh_rebuilds_once(tmp_path):
    calls = []
    base = ArtifactCache(tmp_path)
    base.get_or_create("k", {"a": 1}, lambda d: calls.append("old"))
    new_code = base.salted("other-code")
    assert new_code.path_for("k", {"a": 1}) != base.path_for("k", {"a": 1})
    fresh = ArtifactCache(tmp_path, refresh=True)
    fresh.get_or_create("k", {"a": 1}, lambda d: calls.append("refresh"))
    fresh.get_or_create("k", {"a": 1}, lambda d: calls.append("again"))  # same process: reused
    assert calls == ["old", "refresh"]


def test_code_fingerprint_tracks_the_method_source():
    ide, fmn = METHODS.get("ide")(), METHODS.get("fmn")()
    assert ide.code_fingerprint() == METHODS.get("ide")().code_fingerprint()
    assert ide.code_fingerprint() != fmn.code_fingerprint()
