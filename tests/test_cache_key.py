"""Trained-model cache key: the code fingerprint covers every module a method imports
(transitively), and a model trained under other speed switches / world size is not reused;
a reused model reports its own training's provenance."""

import shutil
from pathlib import Path

import pytest
from toyspec import register_plugin, tiny_spec

from reid_bench.engine.accel import AccelOptions
from reid_bench.engine.fingerprint import ROOT, import_closure, source_fingerprint
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.plan import plan


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the reid_bench sources to edit."""
    root = tmp_path_factory.mktemp("src")
    shutil.copytree(ROOT / "reid_bench", root / "reid_bench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _append(f: Path, text: str = "\n# edited\n") -> str:
    old = f.read_text()
    f.write_text(old + text)
    return old


@pytest.mark.parametrize("edited", [
    "models/ide.py",          # the method itself
    "models/_common.py",      # imported directly
    "data/transforms.py",     # a helper imported by models/_common.py (indirect)
    "engine/accel.py",        # imported lazily inside a train.py function (indirect)
    "engine/distributed.py",  # imported lazily by accel.py (two levels down)
    "engine/__init__.py",     # a package __init__ that runs on import of engine.train
    "data/__init__.py",       # a package __init__ that runs on import of data.samplers
])
def test_editing_an_imported_module_changes_the_fingerprint(tree, edited):
    ide = tree / "reid_bench" / "models" / "ide.py"
    before = source_fingerprint(ide, tree)
    f = tree / "reid_bench" / edited
    old = _append(f)
    try:
        assert source_fingerprint(ide, tree) != before
    finally:
        f.write_text(old)
    assert source_fingerprint(ide, tree) == before  # deterministic: same source, same hash


def test_modules_the_method_does_not_import_do_not_count(tree):
    ide = tree / "reid_bench" / "models" / "ide.py"
    names = {p.relative_to(tree / "reid_bench").as_posix() for p in import_closure(ide, tree)}
    # Hand-checked: ide → _common → data/samplers, data/transforms; ide → train → accel →
    # distributed.
    assert {"models/_common.py", "models/backbones.py", "engine/train.py", "engine/accel.py",
            "engine/distributed.py", "data/samplers.py", "data/transforms.py",
            "engine/method.py"} <= names
    assert not names & {"models/fmn.py", "run/runner.py", "cli/run.py", "report/build.py",
                        "run/launch/worker.py"}
    before = source_fingerprint(ide, tree)
    for other in ("report/build.py", "models/fmn.py", "cli/run.py"):
        f = tree / "reid_bench" / other
        old = _append(f)
        try:
            assert source_fingerprint(ide, tree) == before, other
        finally:
            f.write_text(old)


def test_plugin_method_outside_the_tree_is_fingerprinted_with_its_imports(tmp_path):
    plugin = tmp_path / "plug.py"
    plugin.write_text("from reid_bench.models._common import StandardRecipe\n")
    names = {p.name for p in import_closure(plugin)}
    assert {"plug.py", "_common.py", "transforms.py", "samplers.py", "method.py"} <= names
    assert "ide.py" not in names


# ------------------------------------------------------------------------------ cache key

def test_model_trained_under_other_switches_is_not_reused(tmp_path, shared_data_root,
                                                           monkeypatch):
    register_plugin()
    marker = tmp_path / "fits.txt"
    spec = load_spec(tiny_spec(tmp_path, [{"name": "tiny", "params": {"marker": str(marker)}}],
                               epochs=1))

    def run(accel=None, force=True):
        r = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                    smoke=True, force=force, accel=accel))
        # force re-evaluates the cell; the trained model is reused unless its key differs
        r.cache.refresh = False
        assert r.run(plan(spec, smoke=True)).ok
        return results.read_results(r.csv).iloc[0]

    first = run()
    assert marker.read_text().count("fit") == 1
    assert first["trained_accel"] == "fp32" and int(first["trained_world_size"]) == 1
    assert first["trained_at"] and first["trained_commit"] == first["git_commit"]
    again = run()
    assert marker.read_text().count("fit") == 1  # same key: reused
    # The reused model reports the provenance of its own training, not this run's.
    assert again["trained_at"] == first["trained_at"]
    assert again["finished_at"] >= first["finished_at"]
    bf16 = run(AccelOptions(precision="bf16"))
    assert marker.read_text().count("fit") == 2  # other precision: retrained
    assert bf16["trained_accel"] == "bf16" and bf16["accel"] == "bf16"
    # Another world size is another key (as the DDP launch sees it).
    monkeypatch.setattr("reid_bench.engine.distributed.world_size", lambda: 2)
    run()
    assert marker.read_text().count("fit") == 3


def test_effective_batch_is_in_the_key():
    from types import SimpleNamespace

    from reid_bench.engine.accel import resolve
    from reid_bench.engine.trained import effective_batch, key_extras

    recipe = {"train": {"batch_size": 64, "lr": 0.1}, "stages": [{"batch_size": 32}]}
    assert effective_batch(recipe) == {"train.batch_size": 64, "stages[0].batch_size": 32}
    assert effective_batch(recipe, 4) == {"train.batch_size": 4, "stages[0].batch_size": 4}
    accel = resolve(None, "cpu")
    full = key_extras(accel, recipe, SimpleNamespace())
    capped = key_extras(accel, recipe, SimpleNamespace(max_batch=4))
    assert full["world_size"] == 1 and full["accel"]["amp_dtype"] is None
    assert full != capped  # a --max-batch run never reuses a full-batch model
