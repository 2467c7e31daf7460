"""core/scoped.Scoped: a value for the duration of a with-block, restored on exit and on an
exception; and it is the one way the package does that (no other module declares a ContextVar,
so no hand-written set/reset can forget the reset)."""

import re
from pathlib import Path

import pytest

from reid_bench.core.scoped import Scoped

PACKAGE = Path(__file__).resolve().parents[1] / "reid_bench"


def test_default_outside_innermost_inside_restored_after_exceptions():
    s = Scoped("test_scoped", 0)
    assert s.get() == 0
    with s.use(1) as v:
        assert v == 1 and s.get() == 1
        with pytest.raises(RuntimeError), s.use(2):
            assert s.get() == 2
            raise RuntimeError
        assert s.get() == 1
    assert s.get() == 0


def test_no_context_variable_outside_the_helper():
    found = [f"{f.relative_to(PACKAGE)}:{i}"
             for f in sorted(PACKAGE.rglob("*.py")) if f.name != "scoped.py"
             for i, line in enumerate(f.read_text().splitlines(), 1)
             if re.search(r"\bContextVar\b|\bcontextvars\b", line)]
    assert not found, "use reid_bench/core/scoped.Scoped: " + ", ".join(found)
