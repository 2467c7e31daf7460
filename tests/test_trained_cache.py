"""``trained.get_or_train``: the one place a model is trained or its cached state loaded (the
runner's whole model, FMN's stage-1 GRN, LEDF's verification networks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reid_bench.engine.artifacts import ArtifactCache
from reid_bench.engine.trained import get_or_train


def test_trains_once_then_loads_the_same_state(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = {"train": 0, "build": 0, "publish": 0}

    def train():
        calls["train"] += 1
        torch.manual_seed(calls["train"])  # a second training would give other weights
        return nn.Linear(3, 2)

    def build():
        calls["build"] += 1
        return nn.Linear(3, 2)

    def publish(model, folder):
        calls["publish"] += 1
        (folder / "extra.txt").write_text("x")

    m1, f1, fresh1 = get_or_train(cache, "kind", {"k": 1}, train, build, file="w.pt",
                                  publish=publish)
    assert fresh1 and calls == {"train": 1, "build": 0, "publish": 1}
    assert (f1 / "w.pt").is_file() and (f1 / "extra.txt").is_file()
    m2, f2, fresh2 = get_or_train(cache, "kind", {"k": 1}, train, build, file="w.pt",
                                  publish=publish)
    assert not fresh2 and f2 == f1 and calls == {"train": 1, "build": 1, "publish": 1}
    assert m2 is not m1
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    # Another key: trained again, in its own folder.
    _, f3, fresh3 = get_or_train(cache, "kind", {"k": 2}, train, build, file="w.pt")
    assert fresh3 and f3 != f1 and calls["train"] == 2


def test_a_failing_training_publishes_nothing(tmp_path):
    cache = ArtifactCache(tmp_path)

    def train():
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        get_or_train(cache, "kind", {"k": 1}, train, lambda: nn.Linear(1, 1))
    assert not cache.exists("kind", {"k": 1})
