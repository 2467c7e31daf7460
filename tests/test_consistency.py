"""Published-number consistency (``spec/consistency.py``) and ``same_as`` (``spec/same_as.py``):
the checks over the shipped specs, and each check failing where its claim is false."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner
from project_specs import project_specs

from reid_bench.cli import main as cli
from reid_bench.core.errors import SpecError
from reid_bench.eval.ranking import AP_DEFINITIONS
from reid_bench.spec import load_spec
from reid_bench.spec.consistency import (
    AP_LABELS,
    check_specs,
    printed_interval,
    table_line,
)
from reid_bench.spec.same_as import declared_refs, row_ref

ROOT = Path(__file__).resolve().parents[1]


@cache
def _shipped():
    return tuple(project_specs())


def _copy_papers(tmp_path: Path, monkeypatch) -> Path:
    """A copy of papers/ as the working directory's, so a test can edit one spec."""
    shutil.copytree(ROOT / "papers", tmp_path / "papers")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "papers"


def test_shipped_specs_are_consistent():
    res = check_specs(list(_shipped()))
    assert res.errors == {}
    assert res.cmc_checked > 200 and sum(c.decidable for c in res.maps) >= 19


def test_printed_interval_is_half_the_last_digit():
    assert printed_interval(35.8) == pytest.approx((35.75, 35.85))
    assert printed_interval(77.96) == pytest.approx((77.955, 77.965))
    assert printed_interval(48.0) == pytest.approx((47.5, 48.5))  # may have been printed "48"


def test_every_ap_definition_has_a_label():
    assert set(AP_LABELS) == set(AP_DEFINITIONS)


def test_standard_ap_on_table4_copy_fails_naming_row_and_interval(tmp_path, monkeypatch):
    """Issue 26: CUHK03 single-shot with `ap: standard` cannot give Verif-Identif Table IV."""
    papers = _copy_papers(tmp_path, monkeypatch)
    spec = papers / "verif_identif" / "table4.yaml"
    text = spec.read_text()
    start = text.index("      ap: {value: market_matlab")
    end = text.index("\n", start)
    spec.write_text(text[:start] + "      ap: standard" + text[end:])
    res = CliRunner().invoke(cli, ["validate", str(spec)])
    assert res.exit_code == 1, res.output
    assert "row 'CaffeNet-Basel.': published mAP 42.6 is infeasible under ap: standard" in res.output
    assert "[43.14, 54.71] %" in res.output and "Fits: ap: market_matlab ([39.45, 45.28] %)" in res.output


def _decidable_exclusions():
    """(spec index, column, AP definition, rows) where the shipped numbers of runnable rows
    exclude that definition: generated from the shipped specs, not listed by hand."""
    res = check_specs(list(_shipped()))
    out = {}
    for c in res.maps:
        if c.decidable and c.runnable and not c.spec.rows[
                [r.name for r in c.spec.rows].index(c.row)].shared:
            for ap in AP_DEFINITIONS:
                if ap not in c.feasible:
                    i = _shipped().index(c.spec)
                    out.setdefault((i, c.column, ap), []).append(c.row)
    return sorted(out.items())


@pytest.mark.parametrize("case", _decidable_exclusions(), ids=lambda kv: f"{kv[0]}")
def test_infeasible_ap_is_an_error(case):
    (i, column, ap), rows = case
    spec = _shipped()[i]
    col = spec.datasets[column]
    bad = spec.model_copy(update={"datasets": {**spec.datasets, column: col.model_copy(
        update={"eval": col.eval.model_copy(update={"ap": ap})})}})
    res = check_specs([bad], list(_shipped()))
    msgs = [m for _, m in res.errors.get(spec.path, [])]
    for row in rows:
        assert any(f"row {row!r}" in m and f"infeasible under ap: {ap}" in m for m in msgs), msgs


@pytest.mark.parametrize("k", [0, 1])
def test_decreasing_cmc_is_an_error(k):
    spec = next(s for s in _shipped() if s.table.id == "table4" and s.paper.id == "verif_identif")
    i = next(j for j, r in enumerate(spec.rows) if r.published["cuhk03"]["rank10"] is not None)
    row = spec.rows[i]
    pub = dict(row.published["cuhk03"])
    ranks = ["rank1", "rank5", "rank10"]
    pub[ranks[k]], pub[ranks[k + 1]] = pub[ranks[k + 1]], pub[ranks[k]]
    rows = list(spec.rows)
    rows[i] = row.model_copy(update={"published": {"cuhk03": pub}})
    res = check_specs([spec.model_copy(update={"rows": rows})], [])
    assert any("CMC decreases" in m for _, m in res.errors[spec.path])


def _declarations():
    return [(si, ri) for si, s in enumerate(_shipped()) for ri, r in enumerate(s.rows)
            if r.same_as is not None]


@pytest.mark.parametrize("si,ri", _declarations())
def test_undeclared_identical_rows_are_an_error(si, ri):
    """Dropping a same_as declaration is refused, unless another declaration still links the
    row (a cluster of identical rows needs one chain, not every pair)."""
    spec = _shipped()[si]
    row = spec.rows[ri]
    rows = list(spec.rows)
    rows[ri] = row.model_copy(update={"same_as": None, "shared": None})
    bare = spec.model_copy(update={"rows": rows})
    universe = [s for s in _shipped() if s is not spec]
    res = check_specs([bare], universe)
    errs = [m for kp, m in res.errors.get(spec.path, []) if kp[:2] == ("rows", ri)]
    me = row_ref(spec, row)
    pointed_at = any(me == ref for s in universe for r in s.rows
                     for ref in declared_refs(s, r).values())
    assert errs or pointed_at
    if errs:
        assert all("without declaring it: add same_as" in m for m in errs)


def test_same_as_row_runs_the_referenced_training():
    from reid_bench.core.hashing import stable_hash
    from reid_bench.core.registry import METHODS
    from reid_bench.table.plan import cell_config, plan, training_key

    specs = {(s.paper.id, s.table.id): s for s in _shipped()}

    def key(spec, row, ds, split=None):
        cell = next(c for c in plan(spec, rows=[row]) if c.dataset == ds and c.split == split)
        cfg = cell_config(spec, cell)
        m = METHODS.get(cell.row.method)()
        return stable_hash(training_key(cell, cfg, m, m.Params.model_validate(cell.row.params))), cfg["eval"]

    ledf = specs[("ledf", "table3")]
    assert key(ledf, "ResNet-50 (O)", "market") == key(specs[("verif_identif", "table2")],
                                                       "ResNet-50 (I)", "market")
    assert key(ledf, "ResNet-50 (O)", "cuhk03", 3) == key(specs[("verif_identif", "table4")],
                                                          "ResNet-50-Basel.", "cuhk03", 3)


def _edit(papers: Path, rel: str, old: str, new: str) -> Path:
    p = papers / rel
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize("old,new,message", [
    ('market: "verif_identif/table2:ResNet-50 (I)"', 'market: "verif_identif/table2:VGG16 (I)"',
     "no column of that row publishes the same market1501 numbers"),
    ('market: "verif_identif/table2:ResNet-50 (I)"', 'market: "verif_identif/table2:Nope"',
     "has no row 'Nope'"),
    ('market: "verif_identif/table2:ResNet-50 (I)"', 'market: "verif_identif table2 ResNet"',
     "is not '<paper>/<table>:<row>'"),
    ('    source: "Sec. 4.2.2"\n', '    source: "Sec. 4.2.2"\n    method: ide\n',
     "differ from verif_identif/table2:ResNet-50 (I)'s"),
    ('    source: "Sec. 4.2.2"\n', '    source: "Sec. 4.2.2"\n    params: {backbone: vgg16}\n',
     "remove its own params"),
])
def test_bad_same_as_declarations_fail_at_load(tmp_path, monkeypatch, old, new, message):
    papers = _copy_papers(tmp_path, monkeypatch)
    p = _edit(papers, "ledf/table3.yaml", old, new)
    with pytest.raises(SpecError, match="same_as|remove its own|differ") as exc:
        load_spec(p)
    assert message in str(exc.value)


def test_report_line_names_the_fitting_definition():
    res = check_specs(list(_shipped()))
    t4 = next(s for s in _shipped() if (s.paper.id, s.table.id) == ("verif_identif", "table4"))
    line = table_line(t4, res.maps)
    assert line.startswith("published mAP is consistent with the trapezoid AP")
    assert " only " in line and "ap: market_matlab" in line
    market = next(s for s in _shipped() if (s.paper.id, s.table.id) == ("verif_identif", "table2"))
    assert "not decidable" in table_line(market, res.maps)


def test_dry_run_says_same_training_as():
    res = CliRunner().invoke(cli, ["run", str(ROOT / "papers/ledf/table3.yaml"), "--dry-run",
                                   "--rows", "ResNet-50 (O)"])
    assert res.exit_code == 0, res.output
    assert "same training as verif_identif/table2:ResNet-50 (I)" in res.output
    assert "same training as verif_identif/table4:ResNet-50-Basel." in res.output


def test_some_shipped_numbers_exclude_a_definition():
    """The generated cases above are not empty (the CUHK03 single-shot tables exclude one)."""
    assert len(_decidable_exclusions()) >= 2


def test_report_page_shows_the_consistency_line(tmp_path):
    from reid_bench.report.build import build_report

    build_report(tmp_path / "results", tmp_path / "report",
                 [str(ROOT / "papers/verif_identif/table4.yaml")], fmt="html")
    page = (tmp_path / "report" / "verif_identif-table4.html").read_text()
    assert ('<p class="consistency" id="consistency"><b>Published-number consistency</b>'
            in page)
    assert "published mAP is consistent with the trapezoid AP (Market-1501 compute_AP.m) only" in page


def test_report_page_names_same_as_rows(tmp_path):
    from reid_bench.report.build import build_report

    build_report(tmp_path / "results", tmp_path / "report",
                 [str(ROOT / "papers/ledf/table3.yaml")], fmt="html")
    page = (tmp_path / "report" / "ledf-table3.html").read_text()
    assert ("ResNet-50 (O) = <code>verif_identif/table2:ResNet-50 (I)</code> (market), "
            "<code>verif_identif/table4:ResNet-50-Basel.</code> (cuhk03)") in page
