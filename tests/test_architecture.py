"""The import rules of docs/architecture.md, checked on the source (every import, including the
lazy ones inside functions), so a change that breaks a layer fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "reid_bench"

# The training path: what a method's trained model depends on. Its code fingerprint keys the
# trained-model cache (reid_bench/engine/fingerprint.py), so it must not import the layers above it:
# an edit to the spec schema, the runner or the report must not invalidate trained models.
TRAINING_PATH = ("models", "data", "eval", "train", "train_fast", "accel", "distributed",
                 "method", "embed", "trained", "artifacts", "recipe", "step_probe",
                 "fingerprint", "checkpoint", "preempt", "weights/load.py",
                 "weights/registry.py", "weights/store.py")
ABOVE_TRAINING = {"spec", "plan", "runner", "launch", "report", "cli", "results", "status",
                  "variants", "overrides", "cellrow", "lease", "estimate", "shakedown"}
# The report reads results CSVs and specs: it must build without the training machinery.
REPORT_MAY_NOT = {"runner", "launch", "models", "train", "train_fast", "cli", "cellrow", "lease"}
EDGE = ("cli", "weights/cli.py")  # the only modules that talk to click


def _files(prefix: str) -> list[Path]:
    p = PKG / prefix
    if p.suffix == ".py":
        return [p]
    return sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]


def _imports(path: Path) -> set[str]:
    """First component under reid_bench of every reid_bench module ``path`` imports ("spec",
    "models", "train", …), plus "click" when it imports click."""
    rel = path.relative_to(PKG).with_suffix("").parts
    package = ["reid_bench", *rel[:-1]]  # the package a relative import starts from
    targets: list[list[str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
            else:
                base = []
            mod = base + (node.module.split(".") if node.module else [])
            # ``from . import results``: the imported names are modules themselves.
            targets += [mod + [a.name] for a in node.names] if not node.module else [mod]
        elif isinstance(node, ast.Import):
            targets += [a.name.split(".") for a in node.names]
    out = {"click" for t in targets if t[0] == "click"}
    return out | {t[1] for t in targets if t[0] == "reid_bench" and len(t) > 1}


def test_the_rule_reader_sees_imports():
    """The checker itself: known imports of known modules are found (else every rule below
    would pass vacuously)."""
    assert {"spec", "plan", "results", "trained"} <= _imports(PKG / "runner.py")
    assert "click" in _imports(PKG / "cli" / "run.py")
    assert "registry" in _imports(PKG / "models" / "ide.py")


@pytest.mark.parametrize("prefix", TRAINING_PATH)
def test_training_path_does_not_import_the_layers_above(prefix):
    for f in _files(prefix):
        bad = _imports(f) & ABOVE_TRAINING
        assert not bad, f"{f.relative_to(PKG)} imports {sorted(bad)} (docs/architecture.md)"


def test_report_does_not_import_the_training_machinery():
    for f in _files("report"):
        bad = _imports(f) & REPORT_MAY_NOT
        assert not bad, f"{f.relative_to(PKG)} imports {sorted(bad)} (docs/architecture.md)"


def test_only_the_cli_edge_talks_to_click_and_nothing_imports_the_cli():
    edge = {f for e in EDGE for f in _files(e)}
    for f in sorted(PKG.rglob("*.py")):
        found = _imports(f)
        if f not in edge:
            assert "click" not in found, f"{f.relative_to(PKG)} imports click: log instead"
        if f.relative_to(PKG).parts[0] not in ("cli", "__main__.py"):
            assert "cli" not in found, f"{f.relative_to(PKG)} imports the CLI"


# The layers of docs/architecture.md, bottom up. A module may import its own layer and below;
# the few lazy imports that cross a line upward are listed, each with why.
LAYERS = [
    {"errors", "strict", "hashing", "atomic", "faults", "metrics", "yamlio", "textable",
     "cache_dir", "provenance", "registry", "console", "integrity", "safepath", "spreadsheet",
     "preempt", "orphans", "__init__"},
    {"recipe", "data", "eval", "weights", "distributed", "accel", "train_fast", "step_probe",
     "train", "checkpoint", "artifacts", "trained", "fingerprint", "method", "embed", "models",
     "history"},
    {"spec", "overrides", "alternatives", "variants", "shakedown", "plan", "results", "lease",
     "cellrow", "status", "estimate", "selection", "quotes", "data_check", "rowstate",
     "finished", "workdirs"},
    {"runner", "cellfit", "launch", "reevaluate", "verify"},
    {"report", "compare"},
    {"cli", "__main__"},
]
UPWARD_ALLOWED = {
    # converting a .caffemodel builds its target network
    ("weights/caffe.py", "models"),
    # `reid-bench weights list` names the specs that need each weight set
    ("weights/cli.py", "spec"), ("weights/cli.py", "models"),
}


def _layer(name: str) -> int:
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    raise AssertionError(f"{name!r} is in no layer of tests/test_architecture.py: add it "
                         "there and to docs/architecture.md")


def test_every_module_imports_only_its_layer_and_below():
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG)
        own = _layer(rel.parts[0].removesuffix(".py"))
        if rel.as_posix() == "weights/cli.py":
            own = _layer("cli")  # the weights command is CLI edge
        for target in sorted(_imports(f) - {"click"}):
            if (rel.as_posix(), target) in UPWARD_ALLOWED:
                continue
            assert _layer(target) <= own, (f"{rel} (layer {own}) imports {target} (layer "
                                           f"{_layer(target)}): see docs/architecture.md")
