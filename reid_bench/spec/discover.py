"""Where the spec files are: ``papers/<paper>/tableN.yaml``."""

from __future__ import annotations

from pathlib import Path


def find_specs(paths: list[str] | None = None, root: Path = Path("papers")) -> list[Path]:
    """Spec files named by ``paths`` (files or folders), default every ``papers/*/table*.yaml``."""
    if not paths:
        return sorted(root.glob("*/table*.yaml"))
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.glob("**/table*.yaml")) if p.is_dir() else [p]
    return out
