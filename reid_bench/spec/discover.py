"""Where the spec files are: ``papers/<paper>/tableN.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def find_specs(paths: list[str] | None = None, root: Path = Path("papers")) -> list[Path]:
    """Spec files named by ``paths`` (files or folders), default every ``papers/*/table*.yaml``."""
    if not paths:
        return sorted(root.glob("*/table*.yaml"))
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.glob("**/table*.yaml")) if p.is_dir() else [p]
    return out


def specs_by_table(paths: list[str] | None = None) -> dict[tuple[str, str], Any]:
    """(paper id, table id) → Spec of every spec file ``find_specs(paths)`` names that loads;
    one that does not is left out (``validate`` names it and why)."""
    from ..core.errors import ReidBenchError
    from .load import load_spec  # lazy: load imports this package

    out = {}
    for f in find_specs(paths or None):
        try:
            spec = load_spec(f)
        except ReidBenchError:
            continue
        out[(spec.paper.id, spec.table.id)] = spec
    return out
