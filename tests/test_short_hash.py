"""One hashing module (``core/hashing.py``): every short hash goes through ``short_hash`` /
``short_hash_parts`` / ``stable_hash``, and its outputs are the ones the inline
``hashlib.sha256(...).hexdigest()[:n]`` expressions gave (pinned below: values computed on the
code before the helper existed). Changing one would rename cached datasets, cell files and
fingerprints and mark finished results stale."""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import pytest

from reid_bench.core.hashing import short_hash, short_hash_parts, stable_hash
from reid_bench.data.base import Sample, fingerprint_samples
from reid_bench.data.market1501_500k import distractor_fingerprint, distractor_listing_hash
from reid_bench.data.synthetic import SyntheticOptions
from reid_bench.engine.fingerprint import source_fingerprint
from reid_bench.spec import load_spec
from reid_bench.store.results import cell_id
from reid_bench.store.row_digest import row_digest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reid_bench"
HASHING = PACKAGE / "core" / "hashing.py"


@pytest.mark.parametrize("data,n", [(b"", 16), ("é\0x", 8), (b"abc" * 1000, 64), ("v", 1)])
def test_short_hash_is_the_sha256_prefix(data, n):
    raw = data.encode() if isinstance(data, str) else data
    assert short_hash(data, n) == hashlib.sha256(raw).hexdigest()[:n]
    assert short_hash_parts([raw[:1], raw[1:]], n) == short_hash(data, n)


def test_pinned_outputs_are_unchanged():
    assert SyntheticOptions().cache_key() == "v1-37f65e396ff2"
    assert SyntheticOptions(num_cams=3, height=64).cache_key() == "v1-2211a62eb1f4"
    splits = {"train": [Sample("/data/x/a/1.jpg", 1, 0), Sample("/data/x/a/2.jpg", 2, 1)],
              "query": [Sample("/data/x/q.jpg", 3, 2)]}
    assert fingerprint_samples(Path("/data/x"), splits) == "342aca19f556e0ef"
    row = {"row": "ResNet-50 (I)", "dataset": "market", "seed": 0, "mAP": 71.25, "rank1": 0.5,
           "smoke": False, "note": "é", "row_digest": "zz"}
    assert row_digest(row) == "6abe4e84483abfc4"
    assert (cell_id("ResNet-50 (I)", "market", 1, "smoke", variant="set:train.lr=0.1")
            == "resnet-50-i__market__s1__smoke__v584d0d62")
    assert cell_id("x", "market", 0, variant="spec:a") == "x__market__s0__v60a2d7e4"
    assert stable_hash({"b": [1, 2.5], "a": "x"}) == "66efddae6a975003"
    assert stable_hash({"b": 1}, n=8) == "eb8ed3cc"
    assert distractor_fingerprint("342aca19f556e0ef", "4e5c08c53cc067d5", 3) == "1ee6cdb0984fcf6e"


def test_pinned_file_tree_hashes_are_unchanged(tmp_path):
    pkg = tmp_path / "fp" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("import os\nfrom . import b\n")
    assert source_fingerprint(pkg / "a.py", tmp_path / "fp") == "afaac80b51dbaab0"
    for f in ("a/1.jpg", "a/2.jpg", "a/b/3.jpg"):
        (tmp_path / "dist" / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dist" / f).touch()
    assert distractor_listing_hash(tmp_path / "dist") == ("4e5c08c53cc067d5", 3)


def test_spec_hash_is_the_files_sha256_prefix(repo_root):
    for rel in ("papers/fmn/table5.yaml", "papers/verif_identif/table2.yaml"):
        path = repo_root / rel
        expected = hashlib.sha256(path.read_bytes()).hexdigest()[:16]  # the old inline form
        assert load_spec(path).spec_hash == expected


def test_cuhk03_image_cache_key_is_unchanged(tmp_path, own_cache):
    from reid_bench.data.cuhk03 import _image_dir

    mat = tmp_path / "cuhk-03.mat"
    mat.write_bytes(b"abc")
    os.utime(mat, ns=(1_700_000_000_000_000_000,) * 2)
    st = mat.stat()
    key = hashlib.sha256(f"{mat.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    assert _image_dir(tmp_path, mat, "labeled") == (
        own_cache.resolve() / "cuhk03" / key.hexdigest()[:16] / "images_labeled")


def _hash_uses(path: Path) -> list[str]:
    """``file:line what`` for each import of hashlib and each sliced ``.hexdigest()`` in a
    module: hashing done by hand instead of through core/hashing.py."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(ROOT)
    out = []
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) else [])
        if any((n or "").split(".")[0] == "hashlib" for n in names):
            out.append(f"{rel}:{node.lineno} imports hashlib")
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == "hexdigest"):
            out.append(f"{rel}:{node.lineno} slices a hexdigest()")
    return out


def test_hashing_only_in_core_hashing():
    found = [u for f in sorted(PACKAGE.rglob("*.py")) if f != HASHING for u in _hash_uses(f)]
    assert not found, ("hash through reid_bench/core/hashing.py (short_hash, short_hash_parts, "
                       "stable_hash, file_digest, bytes_digest):\n" + "\n".join(found))


@pytest.mark.parametrize("source", [
    "import hashlib\n",
    "from hashlib import sha256\n",
    "x = h.hexdigest()[:8]\n",
    "def f(b):\n    import hashlib as hl\n    return hl.md5(b).hexdigest()[:4]\n",
])
def test_the_check_finds_inline_hashing(tmp_path, source, monkeypatch):
    f = ROOT / "reid_bench" / "_probe_.py"  # only parsed, never written: read_text is patched
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert _hash_uses(f)
