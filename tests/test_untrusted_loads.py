"""A results folder is untrusted input: nothing in it is unpickled (issue 27 item 1).

One check over the whole package's source (every torch.load with weights_only=True, no pickle
family, no np.load(allow_pickle=True), no unsafe YAML loader), proven able to fail, and the
attack itself: a checkpoint carrying a ``__reduce__`` payload planted where a training resumes
from, with and without a forged identity file."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest
import torch
from crashing import linear_toy_stage

from reid_bench.engine import checkpoint as ckpt
from reid_bench.engine.checkpoint_identity import (
    checkpoint_identity,
    current_identity,
    use_checkpoint_identity,
)
from reid_bench.engine.recipe import OptimRecipe

PKG = Path(__file__).resolve().parents[1] / "reid_bench"
# Modules that unpickle (or run code) whatever file they are handed.
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal",
              "cloudpickle", "torch.jit"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _kw_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


def unsafe_loads(source: str) -> list[str]:
    """``line: what`` for every load in ``source`` that may unpickle or run code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""])
            found += [f"{node.lineno}: import {m}" for m in mods
                      if m in UNPICKLERS or m.split(".")[0] in UNPICKLERS - {"torch.jit"}]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if last == "load" and name.split(".")[0] == "torch" and not _kw_true(node,
                                                                            "weights_only"):
            found.append(f"{node.lineno}: {name} without weights_only=True")
        elif name.split(".")[0] in UNPICKLERS or name.startswith("torch.jit."):
            found.append(f"{node.lineno}: {name}")
        elif last == "load" and name.split(".")[0] in ("np", "numpy") and _kw_true(
                node, "allow_pickle"):
            found.append(f"{node.lineno}: {name}(allow_pickle=True)")
        elif last in ("read_pickle", "unsafe_load", "full_load") or name in (
                "yaml.load", "yaml.load_all"):
            found.append(f"{node.lineno}: {name}")
        elif any(_dotted(k.value).endswith(("yaml.Loader", "yaml.UnsafeLoader",
                                            "yaml.FullLoader")) for k in node.keywords):
            found.append(f"{node.lineno}: {name} with an unsafe YAML loader")
    return found


BAD = """
import pickle
from dill import loads
state = torch.load(p)
state = torch.load(p, map_location="cpu", weights_only=False)
arr = np.load(p, allow_pickle=True)
df = pd.read_pickle(p)
y = yaml.load(text, Loader=yaml.Loader)
y = yaml.unsafe_load(text)
m = torch.jit.load(p)
"""
GOOD = """
state = torch.load(p, map_location="cpu", weights_only=True)
arr = np.load(p)
y = yaml.safe_load(text)
"""


def test_the_scan_finds_each_kind_of_unsafe_load():
    """The check can fail: each unsafe form is found, the safe forms are not."""
    assert len(unsafe_loads(BAD)) == 9, unsafe_loads(BAD)
    assert unsafe_loads(GOOD) == []


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_unpickles(path):
    assert unsafe_loads(path.read_text()) == [], path


# ------------------------------------------------------------------------------ the attack


class _Payload:
    """Runs code when unpickled (the planted attack): writes a file."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (exec, (f"open({self.target!r}, 'w').write('payload ran')",))


@pytest.mark.parametrize("sidecar", ["none", "forged", "other identity"])
def test_planted_pickle_checkpoint_never_runs(tmp_path, caplog, sidecar):
    """A ``__reduce__`` payload saved as a cell's checkpoint: with no identity file, with one
    forged to match this training (identity and sha256 both right: the sidecar is unkeyed), or
    with another identity. The payload never runs; the file is set aside (kept) and the stage
    trains from scratch."""
    marker = tmp_path / "pwned"
    path = tmp_path / ".work-x" / "train.ckpt"
    path.parent.mkdir()
    torch.save({"model": _Payload(marker), "epoch": 1}, path)
    identity = checkpoint_identity("h", "code")
    with use_checkpoint_identity(identity):
        expected = current_identity("train", OptimRecipe(lr=0.1, epochs=2))
        if sidecar != "none":
            ident = expected if sidecar == "forged" else {**expected, "train_hash": "other"}
            ckpt.sidecar(path).write_text(json.dumps(
                {"identity": ident, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}))
        hist = linear_toy_stage(path, 2)
    assert not marker.exists(), "the planted payload ran"
    assert [h["epoch"] for h in hist] == [0, 1]  # trained from scratch
    assert any("not resuming train.ckpt" in m for m in caplog.messages), caplog.messages
    assert list((tmp_path / ".work-x.set-aside").glob("train.ckpt.*"))  # kept for inspection
