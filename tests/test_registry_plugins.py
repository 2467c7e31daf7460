"""REID_BENCH_PLUGINS is honoured whenever it is set, not only before a registry's first lookup:
a plugin named after the registries were first used (by an embedding program, or by an earlier
test in the same process) still registers its methods and datasets. Before this, ``status`` in
a process that had used the registries earlier called every cell of a plugin dataset
"unverified" (tests/test_launch_splits.py failed after tests/test_report_markdown.py)."""

import sys
import textwrap

import pytest

from reid_bench.core.errors import RegistryError
from reid_bench.core.registry import DATASETS, METHODS


@pytest.fixture(autouse=True)
def _registries_restored(monkeypatch):
    """The late plugin's entries do not outlive the test (others enumerate the registries)."""
    for reg in (METHODS, DATASETS):
        reg.names()
        for attr in ("_items", "_info"):
            monkeypatch.setattr(reg, attr, type(getattr(reg, attr))(getattr(reg, attr)))


def test_a_plugin_named_after_the_first_lookup_is_found(tmp_path, monkeypatch):
    (tmp_path / "rb_late_plugin.py").write_text(textwrap.dedent("""
        from reid_bench.core.registry import DATASETS, METHODS

        @METHODS.register("late_method")
        class LateMethod:
            pass

        @DATASETS.register("late_dataset")
        def late_dataset(root, **options):
            raise NotImplementedError
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("REID_BENCH_PLUGINS", raising=False)
    assert "late_method" not in METHODS.names()  # the registries are loaded without it
    assert "late_dataset" not in DATASETS
    monkeypatch.setenv("REID_BENCH_PLUGINS", "rb_late_plugin")
    assert "late_method" in METHODS
    assert "late_dataset" in DATASETS.names()
    monkeypatch.delitem(sys.modules, "rb_late_plugin")


def test_a_plugin_that_does_not_import_names_itself(monkeypatch):
    METHODS.names()
    monkeypatch.setenv("REID_BENCH_PLUGINS", "rb_no_such_plugin_module")
    with pytest.raises(RegistryError, match="rb_no_such_plugin_module"):
        METHODS.names()
