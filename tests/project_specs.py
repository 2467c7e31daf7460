"""The project's own specs (``papers/*/table*.yaml``), each read and validated once per test run
and found from this file, never from the working directory.

``SPEC_FILES`` lists them (absolute paths); ``project_spec("fmn/table5.yaml")`` returns the
loaded ``Spec`` (frozen, so one copy is safely shared); ``project_specs()`` all of them. Tests
that check loading itself (validation, ``check_methods``, ``complete``) still call
``load_spec`` on their own.
"""

from __future__ import annotations

import functools
from pathlib import Path

from reid_bench.spec import find_specs, load_spec
from reid_bench.spec.schema import Spec

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "papers"
SPEC_FILES: list[Path] = find_specs(root=PAPERS)


def project_spec(path: str | Path) -> Spec:
    """``papers/<path>`` (or an absolute path under it), loaded once per test run."""
    p = Path(path)
    if not p.is_absolute():
        p = PAPERS / (p.relative_to("papers") if p.parts[0] == "papers" else p)
    return _load(p.resolve())


@functools.cache
def _load(path: Path) -> Spec:
    return load_spec(path)


def project_specs() -> list[Spec]:
    """Every spec of ``SPEC_FILES``, loaded once per test run."""
    return [project_spec(p) for p in SPEC_FILES]
