"""Fingerprint of the source code a module runs: the module's own file and every reid_bench
module it imports, transitively.

Trained-model artefacts are keyed by this (``Method.code_fingerprint``), so editing any code a
method's training goes through — its own file, ``train.py``, ``accel.py``, a helper imported by
``models/_common.py`` — never silently reuses a model trained by the old code.

The import graph is found statically (``ast``: every ``import``/``from … import`` anywhere in
the file, function-level ones included, since lazy imports run too), restricted to modules of
the ``reid_bench`` package; importing ``a.b.c`` also runs the ``__init__`` of ``a`` and
``a.b``. Static analysis over-approximates (a lazy import in a branch never taken still counts),
which can only cause a needless retraining, never a stale reuse. Deterministic: files are
hashed in sorted order by their path relative to the package root.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

from ..core.hashing import short_hash_parts

PACKAGE = "reid_bench"
ROOT = Path(__file__).resolve().parents[2]  # folder holding the reid_bench package


def _module_file(name: str, root: Path) -> Path | None:
    """The source file of module ``name`` (dotted, inside ``PACKAGE``) under ``root``."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts)
    for f in (base / "__init__.py", base.with_suffix(".py")):
        if f.is_file():
            return f
    return None


def _module_name(path: Path, root: Path) -> str | None:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) if parts and parts[0] == PACKAGE else None


def _imports(path: Path, name: str | None) -> set[str]:
    """Dotted names of every module ``path`` imports (module ``name``; None outside the
    package, where relative imports cannot point into it). ``from X import y`` yields both
    ``X`` and ``X.y`` (y may be a submodule); non-modules are dropped by the caller."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if name is None:
                    continue
                base = name.split(".")
                # A package's own name is its anchor for level 1; a module's is its parent.
                keep = len(base) - node.level + (1 if is_pkg else 0)
                if keep <= 0:
                    continue
                mod = ".".join(base[:keep] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names if a.name != "*")
    return out


def import_closure(path: Path, root: Path = ROOT) -> list[Path]:
    """``path`` and the source files of every ``reid_bench`` module it imports, transitively
    (with the ``__init__.py`` of every package on the way), sorted."""
    path = Path(path).resolve()
    seen: dict[Path, None] = {path: None}
    todo = [path]
    while todo:
        f = todo.pop()
        for mod in _imports(f, _module_name(f, root)):
            parts = mod.split(".")
            if parts[0] != PACKAGE:
                continue
            # The module and every package above it (their __init__ runs on import).
            for i in range(1, len(parts) + 1):
                g = _module_file(".".join(parts[:i]), root)
                if g is not None and g.resolve() not in seen:
                    seen[g.resolve()] = None
                    todo.append(g.resolve())
    return sorted(seen)


def source_fingerprint(path: Path, root: Path = ROOT) -> str:
    """16 hex digits hashing the files of ``import_closure(path, root)`` (names relative to
    ``root`` where possible, and contents)."""
    def parts() -> Iterator[bytes]:
        for f in import_closure(path, root):
            try:
                label = f.relative_to(root.resolve()).as_posix()
            except ValueError:
                label = f.name
            yield label.encode() + b"\0"
            yield f.read_bytes() + b"\0"

    return short_hash_parts(parts())


@functools.cache
def cached_fingerprint(path: str) -> str:
    """``source_fingerprint`` of the installed package, computed once per process (the source
    does not change under a running process in any way that should matter to it)."""
    return source_fingerprint(Path(path))
