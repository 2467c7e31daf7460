"""The runner's four typed steps (run/prepare, run/models, run/evaluate, store/cellrow): what a
cell record holds at each stage an attempt can end in, the memoised input preprocessing, the
public seeding, and launchers hooking in through ``CellHooks`` rather than subclasses."""

from __future__ import annotations

import ast
import random
from itertools import product
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from reid_bench.data import preprocess
from reid_bench.data.base import ReidDataset
from reid_bench.data.preprocess import InputPreprocessing, preprocess_for
from reid_bench.engine.recipe import InputRecipe
from reid_bench.engine.seeding import seed_everything
from reid_bench.store.outcome import CellOutcome, Prepared, Result, Trained

PKG = Path(__file__).resolve().parents[1] / "reid_bench"

# The cell record's keys (besides row and metrics) in the order the runner wrote them before
# the typed steps existed; a record holds the ones of the stages its attempt reached.
RECORD_ORDER = ["config", "dataset_fingerprint", "synthetic", "train_hash", "accel",
                "code_fingerprint", "trained_artifact", "trained", "trained_files", "weights",
                "history", "history_warnings", "history_file", "shakedown", "cmc",
                "eval_details", "traceback"]
TRAINED_KEYS = RECORD_ORDER[5:13]


def _trained(from_memory: bool, history_file: str | None = "a/metrics.csv") -> Trained:
    return Trained(code_fingerprint="c0de", artifact="/r/_artifacts/trained/x", training={},
                   files={"model.pt": "ab"}, weights_loaded=[], history=[],
                   history_warnings=[], history_file=history_file, from_memory=from_memory)


def _prepared() -> Prepared:
    accel = SimpleNamespace(as_dict=lambda: {"tag": "fp32"})
    return Prepared(cell=None, config={}, config_hash="h", method=None, params=None,
                    recipe=None, test_set=None, train_set=None, dataset_fingerprint="fp",
                    synthetic=True, preprocessing=InputPreprocessing(), training_key={},
                    training_hash="t", accel=accel)


# Every combination of the parts an attempt can reach (later parts only after earlier ones).
STAGES = [
    dict(config=c, fingerprint=f, prepared=p, fit=fit, shake=s, result=r, tb=tb)
    for c, f, p, fit, s, r, tb in product([False, True], [False, True], [False, True],
                                          [None, "started", "fresh", "memory"],
                                          [False, True], [False, True], [False, True])
    if (c or not f) and (f or not p) and (p or fit is None) and (fit in ("fresh", "memory")
                                                                 or not r)
]


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: "-".join(
    k if v is True else str(v) for k, v in s.items() if v))
def test_a_record_holds_the_parts_reached_in_the_written_order(stage):
    trained = (_trained(stage["fit"] == "memory") if stage["fit"] in ("fresh", "memory")
               else None)
    out = CellOutcome(
        spec=None, cell=None, status="ok" if stage["result"] else "failed",
        config={"k": 1} if stage["config"] else None,
        dataset_fingerprint="fp" if stage["fingerprint"] else None,
        prepared=_prepared() if stage["prepared"] else None,
        code_fingerprint="c0de" if stage["fit"] else None, trained=trained,
        shakedown={"step_s": 1.0} if stage["shake"] else None,
        result=Result(metrics={"mAP": 1.0}, cmc=[1.0]) if stage["result"] else None,
        traceback="Traceback..." if stage["tb"] else None)
    keys = list(out.details())
    want = [k for k in RECORD_ORDER if
            (k == "config" and stage["config"])
            or (k == "dataset_fingerprint" and stage["fingerprint"])
            or (k in ("synthetic", "train_hash", "accel") and stage["prepared"])
            or (k == "code_fingerprint" and stage["fit"])
            or (k in TRAINED_KEYS[1:] and trained is not None)
            or (k == "shakedown" and stage["shake"])
            or (k in ("cmc", "eval_details") and stage["result"])
            or (k == "traceback" and stage["tb"])]
    if stage["fit"] == "memory":
        # A model reused from memory: its provenance as the earlier cell recorded it, with
        # history_file before history_warnings (the order of the records before this type).
        i = want.index("history_warnings")
        want[i], want[i + 1] = want[i + 1], want[i]
    assert keys == want


def test_trained_without_history_file_has_no_key():
    for memory in (False, True):
        assert "history_file" not in _trained(memory, None).details()


def _dataset(root: Path, fingerprint: str) -> ReidDataset:
    return ReidDataset(name="toy", root=root, splits={"train": [], "query": [], "gallery": []},
                       fingerprint=fingerprint)


def test_preprocess_for_computes_the_mean_colour_once_per_training_set(tmp_path, monkeypatch):
    from reid_bench.data import transforms

    calls: list[str] = []

    def fake(samples):
        calls.append("x")
        return (0.1 * len(calls), 0.2, 0.3)

    monkeypatch.setattr(transforms, "compute_mean_colour", fake)
    monkeypatch.setattr(preprocess, "_MEAN_COLOURS", type(preprocess._MEAN_COLOURS)())
    mean = InputRecipe(normalize="mean_image")
    a, b = _dataset(tmp_path, "fa"), _dataset(tmp_path, "fb")
    first = preprocess_for(mean, "caffenet", a)
    assert first == InputPreprocessing("caffenet", (0.1, 0.2, 0.3))
    assert preprocess_for(mean, "vgg16", a) == InputPreprocessing("vgg16", (0.1, 0.2, 0.3))
    assert len(calls) == 1  # the same training set: not decoded again
    assert preprocess_for(mean, "vgg16", b).mean_colour == (0.2, 0.2, 0.3)
    assert len(calls) == 2
    for recipe in (InputRecipe(normalize="imagenet"), InputRecipe(normalize="none"), None):
        assert preprocess_for(recipe, "resnet50", b) == InputPreprocessing("resnet50", None)
    assert len(calls) == 2


def test_seed_everything_reseeds_python_numpy_and_torch():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_everything(5)
    first = draw()
    seed_everything(5)
    assert draw() == first
    seed_everything(6)
    assert draw() != first


def _classes(path: Path) -> list[ast.ClassDef]:
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)]


def test_no_module_subclasses_the_runner_to_change_a_cell():
    """Launchers and re-evaluation hook into a cell through ``CellHooks`` and the public
    steps, never by overriding the runner's private methods."""
    found = [f"{f.relative_to(PKG)}:{c.name}" for f in sorted(PKG.rglob("*.py"))
             for c in _classes(f)
             if any(getattr(b, "id", getattr(b, "attr", None)) == "Runner" for b in c.bases)]
    assert not found, f"{found} subclass Runner: pass CellHooks instead (run/hooks.py)"
    assert "Runner" in {c.name for c in _classes(PKG / "run" / "runner.py")}  # checker sees it


def test_a_failure_resolving_the_preprocessing_records_what_was_prepared(
        tmp_path, shared_data_root, monkeypatch):
    """The input preprocessing decodes training images (``normalize: mean_image``): one that
    passed the file check but does not decode fails the cell, and its record keeps the parts
    prepared before it (data fingerprint, synthetic, training hash, switches), as it did
    before the runner was split into steps."""
    from toyspec import register_plugin, tiny_spec

    from reid_bench.run import prepare
    from reid_bench.run.runner import Runner, RunOptions
    from reid_bench.run.verify import cell_json_path, read_cell_json
    from reid_bench.spec import load_spec
    from reid_bench.store import results
    from reid_bench.table.plan import plan

    def undecodable(*args, **kwargs):
        raise OSError("image file is truncated: 0001_c1s1_000001_00.jpg")

    register_plugin()
    monkeypatch.setattr(prepare, "preprocess_for", undecodable)
    spec = load_spec(tiny_spec(tmp_path, [{"name": "a"}], epochs=1))
    res = tmp_path / "r"
    summary = Runner(spec, RunOptions(results_dir=res, data_root=shared_data_root, smoke=True,
                                      quiet=True)).run(plan(spec, smoke=True))
    assert [(status, "truncated" in err) for _, status, err in summary.failed] == \
        [("failed", True)]
    row = results.read_results(results.table_csv(res, spec.paper.id, spec.table.id)).iloc[0]
    payload, why = read_cell_json(cell_json_path(row.to_dict(), res), res)
    assert payload is not None, why
    for key in ("config", "dataset_fingerprint", "synthetic", "train_hash", "accel"):
        assert key in payload, key
    assert payload["synthetic"] is True
