"""Artefacts record the sha256 of their files and are verified before reuse (issue 27 item 6):
a bit-rotted, replaced, truncated, removed or added file is a logged error, the artefact is set
aside (kept) and rebuilt, never silently reused."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch import nn

from reid_bench.engine.artifacts import MANIFEST, ArtifactCache, manifest_mismatch, read_manifest
from reid_bench.engine.trained import get_or_train


def _noise(folder):
    state = torch.load(folder / "w.pt", weights_only=True)
    state["weight"] += 0.01 * torch.randn_like(state["weight"])
    torch.save(state, folder / "w.pt")


def _replace(folder):
    torch.save(nn.Linear(3, 2).state_dict(), folder / "w.pt")


def _flip_bit(folder):
    data = bytearray((folder / "w.pt").read_bytes())
    data[len(data) // 2] ^= 1
    (folder / "w.pt").write_bytes(bytes(data))


TAMPER = {
    "noise added to the weights": _noise,
    "model replaced": _replace,
    "one bit flipped": _flip_bit,
    "model truncated": lambda f: (f / "w.pt").write_bytes((f / "w.pt").read_bytes()[:100]),
    "model removed": lambda f: (f / "w.pt").unlink(),
    "a file added": lambda f: (f / "evil.pt").write_bytes(b"x"),
    "provenance edited": lambda f: (f / "extra.json").write_text('{"commit": "forged"}'),
    "manifest removed": lambda f: (f / MANIFEST).unlink(),
    "manifest garbled": lambda f: (f / MANIFEST).write_text("[1, 2"),
}


def _get(root, calls):
    def train():
        calls.append("train")
        torch.manual_seed(len(calls))
        return nn.Linear(3, 2)

    def publish(model, folder):
        (folder / "extra.json").write_text('{"commit": "abc"}')

    # A new cache object each time: what a new process sees (verification is per process).
    return get_or_train(ArtifactCache(root), "trained", {"k": 1}, train,
                        lambda: nn.Linear(3, 2), file="w.pt", publish=publish)


def test_manifest_lists_every_file_with_its_sha256(tmp_path):
    _, folder, _ = _get(tmp_path, [])
    files = read_manifest(folder)
    assert set(files) == {"w.pt", "extra.json"} and all(len(h) == 64 for h in files.values())
    assert manifest_mismatch(folder) is None


def test_untouched_artefact_is_reused(tmp_path):
    calls = []
    _get(tmp_path, calls)
    _, _, fresh = _get(tmp_path, calls)
    assert not fresh and calls == ["train"]


@pytest.mark.parametrize("how", sorted(TAMPER))
def test_tampered_artefact_is_set_aside_and_rebuilt(tmp_path, caplog, how):
    calls = []
    m1, folder, _ = _get(tmp_path, calls)
    TAMPER[how](folder)
    with caplog.at_level(logging.ERROR, logger="reid_bench.engine.artifacts"):
        m2, folder2, fresh = _get(tmp_path, calls)
    assert fresh and calls == ["train", "train"] and folder2 == folder  # rebuilt, same key
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "is not reused" in errors[0] and "Set aside" in errors[0]
    kept = list((tmp_path / "_set_aside" / "trained").iterdir())
    assert len(kept) == 1 and kept[0].name.startswith(folder.name)  # kept, not deleted
    assert manifest_mismatch(folder2) is None
    assert json.loads((folder2 / MANIFEST).read_text()).keys() == {"w.pt", "extra.json"}
