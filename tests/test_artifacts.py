"""Cached artefacts: built once, published atomically, keyed by config and code."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reid_bench.core.registry import METHODS
from reid_bench.engine.artifacts import ArtifactCache

ROOT = Path(__file__).resolve().parents[1]  # the folder holding the reid_bench package


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


# What a method's training runs, read by a fresh interpreter from a copy of the package.
FINGERPRINTS = ("import json; from reid_bench.core.registry import METHODS; "
                "print(json.dumps({m: METHODS.get(m)().code_fingerprint() "
                "for m in ('ide', 'fmn')}))")


def _fingerprints_of(*srcs: Path) -> list[dict[str, str]]:
    """FINGERPRINTS in one fresh interpreter per package copy (run side by side)."""
    # cwd=src: ``python -c`` puts the working folder first on sys.path.
    procs = [subprocess.Popen([sys.executable, "-c", FINGERPRINTS + "; import reid_bench; "
                               "print(reid_bench.__file__)"], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(src)), cwd=src)
             for src in srcs]
    out = []
    for src, proc in zip(srcs, procs, strict=True):
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, stdout
        *_, fingerprints, package = stdout.strip().splitlines()
        assert Path(package).is_relative_to(src)  # the copy was fingerprinted, not this checkout
        out.append(json.loads(fingerprints))
    return out


def _copy_editing(dest: Path, *edited: str) -> Path:
    """A copy of the package under ``dest`` with a comment appended to each ``edited`` file."""
    shutil.copytree(ROOT / "reid_bench", dest / "reid_bench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in edited:
        f = dest / "reid_bench" / name
        f.write_text(f.read_text() + "\n# edited\n")
    return dest


@pytest.mark.slow
def test_editing_a_shared_module_imported_transitively_changes_the_fingerprint(tmp_path):
    """``data/transforms.py`` is imported by no method file, only through ``models/_common.py``
    (hand-checked): editing it must change both IDE's and FMN's fingerprints, so their cached
    trained models are not reused; editing ``cli/run.py``, which no method imports, must not."""
    here = {m: METHODS.get(m)().code_fingerprint() for m in ("ide", "fmn")}
    unrelated, shared = _fingerprints_of(
        _copy_editing(tmp_path / "a", "cli/run.py"),
        _copy_editing(tmp_path / "b", "cli/run.py", "data/transforms.py"))
    assert unrelated == here  # same code a method runs, wherever it lives
    assert shared["ide"] != here["ide"] and shared["fmn"] != here["fmn"]
