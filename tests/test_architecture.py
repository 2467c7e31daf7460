"""The import rules of docs/architecture.md, checked on the source (every import, including the
lazy ones inside functions), so a change that breaks a layer fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "reid_bench"

# The layers of docs/architecture.md, bottom up: each is a set of top-level folders of the
# package, and a module may import its own layer and below. No flat modules: only the package's
# own ``__init__`` and ``__main__`` sit beside the folders (the CLI edge runs ``__main__``).
LAYERS = [
    {"core"},                                                     # 0 leaves
    {"engine", "data", "eval", "models", "weights", "history"},  # 1 the training path
    {"spec", "table", "store"},                                   # 2 the table
    {"run"},                                                      # 3 running
    {"report"},                                                   # 4 reading results
    {"cli", "__main__"},                                          # 5 edge
]
TOP_FILES = {"__init__.py", "__main__.py"}

# The training path: what a method's trained model depends on. Its code fingerprint keys the
# trained-model cache (reid_bench/engine/fingerprint.py), so it must not import the folders
# above it: an edit to the spec schema, the runner or the report must not invalidate trained
# models. (The layer rule implies it; kept apart because it is the rule that costs retraining.)
TRAINING_PATH = ("core", "engine", "data", "eval", "models", "history", "weights")
ABOVE_TRAINING = {"spec", "table", "store", "run", "report", "cli"}
# The report reads results CSVs and specs (and checks rows against their records with
# run/verify.py): it must build without the training machinery.
REPORT_MAY_NOT = {"run.runner", "run.cellfit", "run.launch", "models", "engine.train",
                  "engine.train_fast", "cli", "store.cellrow", "store.lease"}
EDGE = "cli"  # the only folder that talks to click


def _files(prefix: str) -> list[Path]:
    return sorted((PKG / prefix).rglob("*.py"))


def _targets(path: Path) -> set[str]:
    """Every reid_bench module ``path`` imports, dotted below the package ("spec",
    "store.results", "engine.train.train_stage", …; the imported name is kept since it may be
    a module), plus "click" when it imports click."""
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
            # ``from ..store import results``: the imported names may be modules themselves.
            targets += [mod + [a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            targets += [a.name.split(".") for a in node.names]
    out = {"click" for t in targets if t[0] == "click"}
    return out | {".".join(t[1:]) for t in targets if t[0] == "reid_bench" and len(t) > 1}


def _imports(path: Path) -> set[str]:
    """The top-level folders of reid_bench ``path`` imports from ("spec", "engine", …), plus
    "click" when it imports click."""
    return {t.split(".")[0] for t in _targets(path)}


def test_the_rule_reader_sees_imports():
    """The checker itself: known imports of known modules are found (else every rule below
    would pass vacuously)."""
    assert {"spec", "table", "store", "engine", "core"} <= _imports(PKG / "run" / "runner.py")
    assert "store.results" in _targets(PKG / "run" / "runner.py")
    assert "click" in _imports(PKG / "cli" / "run.py")
    assert "core" in _imports(PKG / "models" / "ide.py")


def test_the_package_has_no_flat_modules():
    """Every module sits in the folder of its layer: ``ls reid_bench`` shows the layers."""
    flat = sorted(f.name for f in PKG.glob("*.py") if f.name not in TOP_FILES)
    assert not flat, f"{flat} sit at the top of reid_bench: move each into its layer's folder"
    folders = {d.name for d in PKG.iterdir() if d.is_dir() and (d / "__init__.py").is_file()}
    assert folders == set().union(*LAYERS) - {"__main__"}, (
        "every folder of reid_bench is in exactly one layer (docs/architecture.md)")


@pytest.mark.parametrize("prefix", TRAINING_PATH)
def test_training_path_does_not_import_the_layers_above(prefix):
    for f in _files(prefix):
        bad = _imports(f) & ABOVE_TRAINING
        assert not bad, f"{f.relative_to(PKG)} imports {sorted(bad)} (docs/architecture.md)"


def test_report_does_not_import_the_training_machinery():
    for f in _files("report"):
        bad = {t for t in _targets(f) for no in REPORT_MAY_NOT
               if t == no or t.startswith(no + ".")}
        assert not bad, f"{f.relative_to(PKG)} imports {sorted(bad)} (docs/architecture.md)"


def test_only_the_cli_edge_talks_to_click_and_nothing_imports_the_cli():
    edge = set(_files(EDGE))
    for f in sorted(PKG.rglob("*.py")):
        found = _imports(f)
        if f not in edge:
            assert "click" not in found, f"{f.relative_to(PKG)} imports click: log instead"
        if f.relative_to(PKG).parts[0] not in ("cli", "__main__.py"):
            assert "cli" not in found, f"{f.relative_to(PKG)} imports the CLI"


def _layer(name: str) -> int:
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    raise AssertionError(f"{name!r} is in no layer of tests/test_architecture.py: put the "
                         "module in a layer's folder (docs/architecture.md)")


def test_every_module_imports_only_its_layer_and_below():
    """By folder, every import (lazy ones included), with no exceptions."""
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG)
        own = _layer(rel.parts[0].removesuffix(".py")) if len(rel.parts) > 1 or \
            rel.name != "__init__.py" else 0
        for target in sorted(_imports(f) - {"click"}):
            assert _layer(target) <= own, (f"{rel} (layer {own}) imports {target} (layer "
                                           f"{_layer(target)}): see docs/architecture.md")
