"""Results a researcher can trust (issue 17): checkpoints resume only the same training, a
hand-edited or stale row is flagged and never reproduced, spec copies and --set overrides get
their own cells, smoke rows stay visible beside real ones, and an output error never touches
results."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from reid_bench import results as R
from reid_bench.cli import main
from reid_bench.integrity import (
    checkpoint_identity,
    row_digest,
    row_edited,
    use_checkpoint_identity,
)
from reid_bench.overrides import (
    OverrideError,
    compose_variant,
    parse_sets,
    validate_overrides,
)
from reid_bench.recipe import OptimRecipe
from reid_bench.report.build import build_report, table_view
from reid_bench.runner import Runner, RunOptions, plan
from reid_bench.spec import load_spec
from reid_bench.status import table_status
from reid_bench.train import train_stage

# A tiny IDE table whose smoke run trains in seconds on the CPU.
SPEC = """\
paper: {id: demo, title: Demo, authors: [A], venue: V, year: 2020}
table: {id: table1, caption: tiny IDE table}
metrics: [rank1, mAP]
datasets:
  market:
    name: market1501
    eval: {protocol: market, ap: standard, distance: euclidean}
recipe:
  input:
    height: {value: 256, source: "x"}
    width: {value: 128, source: "x"}
  backbone:
    pretrained: {value: imagenet, source: "x"}
  train:
    lr: {value: 0.01, source: "Sec. 4"}
    epochs: {value: 60, source: "x"}
smoke:
  dataset_options: {num_train_ids: 8, num_test_ids: 8, num_cams: 3, images_per_cam: 2, queries_per_id: 1,
                    num_distractors: 4, num_junk: 2}
  recipe:
    input: {height: 32, width: 16}
    backbone: {pretrained: none, width: 0.25}
    train: {epochs: EPOCHS, lr: 0.05, batch_size: 16}
rows:
  - name: IDE A
    method: ide
    params: {backbone: resnet50}
    published: {market: {rank1: 70.0, mAP: 50.0}}
"""


def _spec_file(root: Path, epochs: int = 2, name: str = "papers/demo/table1.yaml",
               lr: float = 0.05) -> Path:
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(SPEC).replace("EPOCHS", str(epochs))
                 .replace("lr: 0.05", f"lr: {lr}"))
    return p


class Interrupt(Exception):
    pass


def _runner(spec_path: Path, results: Path, data: Path, log, **kw) -> Runner:
    return Runner(load_spec(spec_path), RunOptions(results_dir=results, data_root=data,
                                                   smoke=True, log=log, **kw))


# --------------------------------------------------------------------------------------------
# Checkpoints


def _toy_stage(ckpt: Path, epochs: int, log, fail_at: int | None = None) -> list[dict]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    data = [(torch.randn(8, 4), torch.randint(0, 2, (8,))) for _ in range(2)]

    def step(batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(model(x), y), {}

    def logger(msg):
        log(msg)
        if fail_at is not None and f"epoch {fail_at}/" in msg:
            raise Interrupt(msg)

    return train_stage(model, data, step, OptimRecipe(lr=0.1, epochs=epochs),
                       checkpoint=ckpt, checkpoint_every=1, log=logger)


def test_train_stage_resumes_only_the_same_identity(tmp_path):
    ckpt = tmp_path / ".work-x" / "stage.ckpt"
    same = checkpoint_identity("trainhash", "code1")
    logs: list[str] = []
    with use_checkpoint_identity(same), pytest.raises(Interrupt):
        _toy_stage(ckpt, 3, logs.append, fail_at=2)
    assert ckpt.is_file()
    # Same training: resumes after the checkpointed epoch.
    logs.clear()
    with use_checkpoint_identity(same), pytest.raises(Interrupt):
        _toy_stage(ckpt, 3, logs.append, fail_at=3)
    assert any("resumed from stage.ckpt at epoch" in m for m in logs), logs
    # Another code fingerprint: set aside (kept), trained from scratch.
    logs.clear()
    with use_checkpoint_identity(checkpoint_identity("trainhash", "code2")):
        hist = _toy_stage(ckpt, 3, logs.append)
    assert not any("resumed" in m for m in logs), logs
    assert any("not resuming stage.ckpt" in m and "code fingerprint" in m for m in logs), logs
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    kept = list((tmp_path / ".work-x.set-aside").iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("stage.ckpt.")


def test_recipe_changed_checkpoint_is_set_aside_not_resumed(tmp_path):
    """The issue's case: a cell interrupted mid-training, then its spec's recipe changed in
    place (e.g. a lower lr after a divergence): the old checkpoint must not be resumed."""
    spec = _spec_file(tmp_path, epochs=3)
    res, data = tmp_path / "res", tmp_path / "data"
    logs: list[str] = []

    def interrupting(msg):
        logs.append(msg)
        if msg.startswith("[ide] epoch 2/3"):
            raise Interrupt(msg)

    r = _runner(spec, res, data, interrupting, checkpoint_every=1)
    assert not r.run(plan(r.spec, smoke=True)).ok  # the cell fails; its work folder stays
    work = next(res.glob("demo/table1/.work-*"))
    assert list(work.glob("*.ckpt")), "expected a mid-training checkpoint"
    _spec_file(tmp_path, epochs=3, lr=0.02)  # the recipe changes in place
    logs.clear()
    r = _runner(spec, res, data, logs.append, checkpoint_every=1)
    summary = r.run(plan(r.spec, smoke=True))
    assert summary.ok, summary.failed
    assert not any("resumed" in m for m in logs), logs
    assert any("not resuming" in m and "train hash" in m for m in logs), logs
    assert sum("epoch" in m and "/3" in m for m in logs) == 3  # all epochs of the new recipe
    kept = list(work.parent.glob(".work-*.set-aside/*.ckpt.*"))
    assert kept, "the old checkpoint is set aside, not deleted"
