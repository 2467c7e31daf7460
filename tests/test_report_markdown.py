"""report.md comes from a jinja template and reads exactly as the earlier hand-built renderer
wrote it; the JSON summary is the view model dumped with the same keys and values.

``tests/golden/report.md`` and ``tests/golden/summary.json`` are that renderer's output (main
at 17dc1d7) on ``tests/report_md_fixture.py``: a table with a hand-edited row, a failed row, a
quoted row, a bf16 row, claims, assumptions, an assumption-variant run, a --set run, a subset
run and a smoke run; a shakedown-only, a subset-only and a smoke-only table; unreadable specs.
One deliberate change since: each table's "Why numbers are missing" list (the full reasons the
HTML shows under a row), added to ``report.md`` in review.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_md_fixture import write_fixture

from reid_bench.report import aggregate
from reid_bench.report.render import markdown
from reid_bench.report.summary import summary
from reid_bench.table import rowstate

GOLDEN = Path(__file__).parent / "golden"
STAMP = "2026-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def fixture_views(tmp_path_factory):
    root = tmp_path_factory.mktemp("mdfx")
    paths, res = write_fixture(root)
    mp = pytest.MonkeyPatch()
    # The fixture's config hashes are made up: no cell is re-planned, so none is stale.
    mp.setattr(rowstate.RowStates, "current_config_hash", lambda self, rec: None)
    try:
        views, broken = aggregate.collect(res, paths + [str(root / "papers/mdfx/missing.yaml")],
                                          with_plots=False)
    finally:
        mp.undo()
    return root, views, broken


def test_markdown_equals_the_hand_built_renderers_output(fixture_views):
    root, views, broken = fixture_views
    broken = ([(Path(f).name, e.replace(str(root), "ROOT")) for f, e in broken]
              + [("x.yaml", "bad | thing")])
    got = markdown(views, broken, STAMP).replace(str(root), "ROOT")
    want = (GOLDEN / "report.md").read_text()
    assert got.splitlines() == want.splitlines()
    assert got == want


def test_json_summary_equals_the_earlier_summary(fixture_views):
    root, views, broken = fixture_views
    got = json.dumps(summary(views, broken[:0], "STAMP"), indent=1, default=str)
    assert json.loads(got.replace(str(root), "ROOT")) == \
        json.loads((GOLDEN / "summary.json").read_text())
