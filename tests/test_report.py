"""The comparison report: verdicts, claims, plots, HTML/markdown/JSON output, spec fields.

Results used here are written by the tests themselves: a toy spec with hand-chosen numbers
(verdicts and claims computed by hand below) and, for the real specs, clearly synthetic CSV
fixtures (``smoke`` and ``synthetic`` true, git commit ``test-fixture``).
"""

from __future__ import annotations

import json
import math
import random
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from project_specs import project_spec

from reid_bench.cli import main
from reid_bench.core.errors import SpecError
from reid_bench.report import claims, verdicts
from reid_bench.report.build import build_report, table_view
from reid_bench.spec import Spec, load_spec
from reid_bench.store.results import cell_dir, cell_id, table_csv, upsert_row, write_cell_json

ROOT = Path(__file__).resolve().parents[1]

TOY = """\
paper: {id: toy, title: A Toy Paper, authors: [A. Author], venue: Nowhere, year: 2020}
table: {id: table1, caption: Toy table with a K sweep}
metrics: [rank1, mAP]
datasets:
  market: {name: synthetic, label: Toy column, eval: {protocol: market, ap: standard}}
recipe:
  train:
    lr: {value: 0.1, source: "Sec. 1"}
    epochs: {value: 5, assumed: "not stated in the paper"}
tolerances: {mAP: 1.0}
rows:
  - {name: "K=1", method: toy, params: {K: 1}, published: {market: {rank1: 70.0, mAP: 50.0}}}
  - {name: "K=2", method: toy, params: {K: 2}, published: {market: {rank1: 80.0, mAP: 60.0}}}
  - {name: "K=3", method: toy, params: {K: 3}, published: {market: {rank1: 75.0, mAP: 55.0}}}
  - {name: Quoted, runnable: false, source: "Someone 2016", published: {market: {rank1: 60.0, mAP: null}}}
  - {name: Broken, method: toy, params: {variant: b}, published: {market: {rank1: 65.0, mAP: 45.0}}}
  - {name: Missing, method: toy, params: {variant: m}, published: {market: {rank1: 66.0, mAP: 46.0}}}
  - {name: Absent, method: toy, params: {variant: a}, published: {market: {rank1: 67.0, mAP: 47.0}}}
claims:
  - {kind: best, row: "K=2", among: ["K=1", "K=2", "K=3"], text: "K = 2 is best"}
  - {kind: ordering, rows: ["K=3", "K=1"], metrics: [rank1]}
  - {kind: improvement, row: "K=2", baseline: "K=1", margin: 5.0}
"""

# (row, seed) → (rank1, mAP); "K=3" has one seed only.
TOY_RESULTS = {("K=1", 0): (70.5, 50.2), ("K=1", 1): (71.5, 49.8),
               ("K=2", 0): (84.0, 55.0), ("K=2", 1): (86.0, 57.0),
               ("K=3", 0): (74.0, 54.0)}


def _config_hash(spec: Spec, name: str, ds: str, seed: int, smoke: bool) -> str:
    """The hash `run` would record for the cell now, so fixtures are not flagged stale."""
    from reid_bench.table.plan import Cell
    from reid_bench.table.status import ConfigHashes

    key = (spec.path, smoke)
    if key not in _HASHERS:
        _HASHERS[key] = ConfigHashes(spec, Path("results"))
    cell = Cell(spec.row(name), ds, seed, "smoke" if smoke else "full")
    return _HASHERS[key].current(cell) or "fixture"


_HASHERS: dict = {}


def _row(spec: Spec, name: str, ds: str, seed: int, *, status: str = "ok",
         metrics: dict | None = None, synthetic: bool = False, error: str | None = None,
         extra: dict | None = None) -> dict:
    smoke = synthetic
    return {"paper": spec.paper.id, "table": spec.table.id, "row": name, "dataset": ds,
            "seed": seed, "smoke": smoke, "status": status, "error": error,
            **(metrics or {}), "extra_metrics": json.dumps(extra) if extra else None,
            "method": "toy", "protocol": "market", "ap": "standard", "distance": "euclidean",
            "dataset_name": "synthetic" if synthetic else spec.datasets[ds].name,
            "synthetic": synthetic, "git_commit": "test-fixture", "git_dirty": False,
            "spec_hash": spec.spec_hash, "config_hash": _config_hash(spec, name, ds, seed, smoke),
            "dataset_fingerprint": "fx",
            "device": "cpu", "device_name": "test fixture", "torch": "x", "wall_s": 1.5,
            "cell_id": cell_id(name, ds, seed, smoke)}


def write_toy(tmp_path: Path, *, synthetic: bool = False) -> tuple[Spec, Path]:
    """The toy spec and its hand-chosen results (plus a CMC file for K=2 seed 0)."""
    spec_file = tmp_path / "papers" / "toy" / "table1.yaml"
    spec_file.parent.mkdir(parents=True)
    spec_file.write_text(TOY)
    spec = load_spec(spec_file)
    res = tmp_path / "results"
    csv = table_csv(res, "toy", "table1")
    for (name, seed), (r1, m) in TOY_RESULTS.items():
        upsert_row(csv, _row(spec, name, "market", seed, metrics={"rank1": r1, "mAP": m},
                             synthetic=synthetic))
    upsert_row(csv, _row(spec, "Broken", "market", 0, status="failed", synthetic=synthetic,
                         error="RuntimeError: boom at step 3"))
    upsert_row(csv, _row(spec, "Missing", "market", 0, status="not_run", synthetic=synthetic,
                         error="dataset market1501 not found under data/"))
    cid = cell_id("K=2", "market", 0, synthetic)
    write_cell_json(cell_dir(res, "toy", "table1") / f"{cid}.json",
                    {"cmc": [0.84, 0.9, 0.95, 0.97, 1.0]})
    return spec, res


def write_synthetic_results(spec: Spec, results_dir: Path, seeds: int = 2,
                            seed: int = 0) -> None:
    """Clearly synthetic fixture results for every runnable row of a real spec: full-tier
    cells of the canonical spec (so they fill the table's headline, which smoke results never
    do) with the synthetic flag set, commit 'test-fixture', numbers drawn at random in
    [5, 95] — never presented as paper results (the report must label them synthetic)."""
    rng = random.Random(seed)
    csv = table_csv(results_dir, spec.paper.id, spec.table.id)
    for r in spec.rows:
        if not r.runnable:
            continue
        for ds in r.datasets or list(spec.datasets):
            for s in range(seeds):
                vals = {m: round(rng.uniform(5, 95), 4) for m in spec.column_metrics(ds)}
                fixed = {m: v for m, v in vals.items() if "@" not in m}
                extra = {m: v for m, v in vals.items() if "@" in m}
                row = _row(spec, r.name, ds, s, metrics=fixed, extra=extra)
                row |= {"synthetic": True, "dataset_name": "synthetic"}
                upsert_row(csv, row)
                cmc = sorted(rng.uniform(0, 1) for _ in range(20))
                write_cell_json(cell_dir(results_dir, spec.paper.id, spec.table.id)
                                / f"{row['cell_id']}.json", {"cmc": cmc})


# --------------------------------------------------------------------------------------------
# Verdicts


def test_tolerance_lookup_order():
    assert verdicts.tolerance("rank1") == verdicts.DEFAULT_TOLERANCES["rank1"]
    assert verdicts.tolerance("rank1@100000") == verdicts.DEFAULT_TOLERANCES["rank1"]
    assert verdicts.tolerance("rank1@100000", {"rank1": 3.0}) == 3.0
    assert verdicts.tolerance("rank1@100000", {"rank1": 3.0, "rank1@100000": 5.0}) == 5.0
    assert verdicts.tolerance("mAP", {"rank1": 3.0}) == verdicts.DEFAULT_TOLERANCES["mAP"]


@pytest.mark.parametrize("pub, mean, band, expected", [
    (50.0, 51.9, 2.0, "reproduced"), (50.0, 48.0, 2.0, "reproduced"),
    (50.0, 52.1, 2.0, "better"), (50.0, 47.9, 2.0, "worse"), (None, 50.0, 2.0, None),
    (50.0, None, 2.0, None)])
def test_compare_band(pub, mean, band, expected):
    assert verdicts.compare(pub, mean, band) == expected


def test_verdict_statuses_and_synthetic_label():
    assert verdicts.verdict("failed", 50, None, 2, False).key == "failed"
    assert verdicts.verdict("diverged", 50, None, 2, False).key == "failed"
    assert verdicts.verdict("not run", 50, None, 2, False).key == "not run"
    assert verdicts.verdict("ok", None, 50, 2, False).key == "n/a"  # the paper prints "-"
    v = verdicts.verdict("ok", 50, 60, 2, True)
    assert (v.key, v.would_be) == ("synthetic", "better")
    assert "not comparable" in v.label and "better" in v.label
    assert verdicts.worst(["reproduced", "worse", "n/a"]) == "worse"
    assert verdicts.worst(["quoted"]) == "quoted"


# --------------------------------------------------------------------------------------------
# Claims


def test_compare_pair_uses_seed_spread():
    # diff 1.0, se = sqrt(1/2 + 1/2) = 1 → threshold 2: within the spread.
    st, diff, thr, _ = claims.compare_pair(claims.Stat(51, 1.0, 2), claims.Stat(50, 1.0, 2))
    assert st == claims.UNDECIDED and diff == pytest.approx(1.0) and thr == pytest.approx(2.0)
    assert claims.compare_pair(claims.Stat(53, 1.0, 2), claims.Stat(50, 1.0, 2))[0] == claims.HELD
    assert (claims.compare_pair(claims.Stat(47, 1.0, 2), claims.Stat(50, 1.0, 2))[0]
            == claims.NOT_HELD)
    # One seed: the sign decides; a tie stays undecided; missing numbers are undecided.
    assert claims.compare_pair(claims.Stat(50.1), claims.Stat(50.0))[0] == claims.HELD
    assert claims.compare_pair(claims.Stat(50.0), claims.Stat(50.0))[0] == claims.UNDECIDED
    assert claims.compare_pair(None, claims.Stat(50.0))[0] == claims.UNDECIDED
    # Margin: 56 − 50 − 5 = 1.
    assert claims.compare_pair(claims.Stat(56), claims.Stat(50), 5.0)[1] == pytest.approx(1.0)


def test_toy_table_verdicts_and_claims(tmp_path):
    spec, res = write_toy(tmp_path)
    v = table_view(spec, res)
    num = {(r.name, m): r.numbers[("market", m)] for r in v.rows for m in ("rank1", "mAP")}
    assert num[("K=1", "rank1")].mean == pytest.approx(71.0)
    assert num[("K=1", "rank1")].std == pytest.approx(math.sqrt(0.5))
    assert num[("K=1", "rank1")].verdict.key == "reproduced"  # +1.0 within ±2
    assert num[("K=2", "rank1")].verdict.key == "better"  # +5.0
    assert num[("K=2", "mAP")].verdict.key == "worse"  # −4.0 outside the spec's ±1.0
    assert num[("K=2", "mAP")].verdict.band == 1.0
    assert num[("K=3", "rank1")].n == 1 and num[("K=3", "rank1")].verdict.key == "reproduced"
    assert num[("Quoted", "rank1")].verdict.key == "quoted"
    assert num[("Broken", "mAP")].verdict.key == "failed"
    assert "boom" in num[("Broken", "mAP")].reason
    assert num[("Missing", "rank1")].verdict.key == "not run"
    assert "not found" in num[("Missing", "rank1")].reason
    assert num[("Absent", "rank1")].verdict.key == "not run"
    rows = {r.name: r.verdict for r in v.rows}
    assert rows == {"K=1": "reproduced", "K=2": "worse", "K=3": "reproduced",
                    "Quoted": "quoted", "Broken": "failed", "Missing": "not run",
                    "Absent": "not run"}
    assert v.counts["reproduced"] == 2 and v.counts["not run"] == 2
    best, order, impr = v.claims
    assert (best.status, best.published_status) == (claims.HELD, claims.HELD)
    assert (order.status, len(order.comparisons)) == (claims.HELD, 1)
    # rank1: 85 − 71 − 5 = 9 held; mAP: 56 − 50 − 5 = 1 < 2·se (se ≈ 1.02) → undecided.
    assert impr.status == claims.UNDECIDED and impr.published_status == claims.HELD
    assert [c.status for c in impr.comparisons] == [claims.HELD, claims.UNDECIDED]
    assert impr.reason == "differences within the seed spread"
    assert {e.key for e in v.assumptions} == {"train.epochs"}
    kinds = [p.kind for p in v.plots]
    assert kinds == ["sweep", "bars", "cmc"]
    assert all(p.svg.startswith("<svg") for p in v.plots)


def test_claim_not_held_and_missing(tmp_path):
    spec, res = write_toy(tmp_path)
    text = TOY.replace('rows: ["K=3", "K=1"]', 'rows: ["K=1", "K=2"]')
    text = text.replace('row: "K=2", baseline: "K=1"', 'row: "Absent", baseline: "K=1"')
    Path(spec.path).write_text(text)
    v = table_view(load_spec(spec.path), res, with_plots=False)
    assert v.claims[1].status == claims.NOT_HELD and v.claims[1].published_status == claims.NOT_HELD
    assert v.claims[2].status == claims.UNDECIDED
    assert v.claims[2].reason == "not run: no reproduced number for Absent"


def test_ordering_checks_every_pair_of_a_partly_run_table(tmp_path):
    spec, res = write_toy(tmp_path)
    Path(spec.path).write_text(TOY.replace('rows: ["K=3", "K=1"]', 'rows: ["K=2", "Absent", "K=1"]'))
    v = table_view(load_spec(spec.path), res, with_plots=False)
    c = v.claims[1]
    assert [(x.better, x.worse, x.status) for x in c.comparisons] == [
        ("K=2", "Absent", claims.UNDECIDED), ("K=2", "K=1", claims.HELD),
        ("Absent", "K=1", claims.UNDECIDED)]
    assert c.status == claims.UNDECIDED
    assert c.reason == "2 of 3 comparisons lack a reproduced number (Absent)"


# --------------------------------------------------------------------------------------------
# Outputs


def test_html_markdown_json_outputs(tmp_path):
    spec, res = write_toy(tmp_path)
    out = tmp_path / "site"
    index = build_report(res, out, [spec.path])
    page = (out / "toy-table1.html").read_text()
    assert "toy-table1.html" in index.read_text()
    assert 'data-row="K=1" data-dataset="market" data-metric="rank1" data-value="71.0"' in page
    assert "71.00 ± 0.71" in page and "▲ better" in page and "▼ worse" in page
    assert "ASSUMED" in page and "not stated in the paper" in page
    assert "RuntimeError: boom" in page and "SYNTHETIC SMOKE" not in page
    # Static and offline: figures inline, nothing fetched from anywhere.
    assert page.count("<svg") == 3 and "<script" not in page and "<link rel=\"style" not in page
    assert re.search(r'(src|xlink:href)="https?:', page) is None
    md = build_report(res, out, [spec.path], fmt="markdown").read_text()
    assert "| K=2 | 80.00 / 85.00 ± 1.41 (+5.00) ▲ better |" in md
    assert "**held**" in md
    summ = json.loads(build_report(res, out, [spec.path], fmt="json").read_text())
    (t,) = summ["tables"]
    assert t["row_verdicts"]["failed"] == 1
    assert [c["status"] for c in t["claims"]] == ["held", "held", "undecided"]
    k2 = next(n for n in t["numbers"] if n["row"] == "K=2" and n["metric"] == "mAP")
    assert (k2["verdict"], k2["delta"], k2["values"]) == ("worse", -4.0, [55.0, 57.0])


def test_synthetic_results_are_labelled_everywhere(tmp_path):
    spec, res = write_toy(tmp_path, synthetic=True)
    v = table_view(spec, res, with_plots=False)
    # Smoke results are never the headline: it reads "not run", the smoke block follows.
    assert v.headline_empty and not v.synthetic and v.claims_held == 0
    assert all(n.mean is None for r in v.rows for n in r.numbers.values())
    (smoke,) = v.others
    k2 = next(r for r in smoke.rows if r.name == "K=2").numbers[("market", "rank1")]
    assert k2.verdict.key == "synthetic" and k2.verdict.would_be == "better"
    assert k2.flags == ["synthetic"]
    out = tmp_path / "site"
    build_report(res, out, [spec.path])
    page = (out / "toy-table1.html").read_text()
    assert 'id="notrun-banner"' in page and 'data-verdict="better"' not in page
    assert page.count('data-verdict="synthetic"') == 6  # K=1..3 × rank1, mAP
    assert page.count('data-flag="synthetic"') == 6
    assert "SYNTHETIC SMOKE" in (out / "index.html").read_text()
    md = build_report(res, out, [spec.path], fmt="markdown").read_text()
    assert "**NOT RUN**" in md and "would read: better" in md and "[synthetic]" in md


def test_cli_report_formats(tmp_path):
    spec, res = write_toy(tmp_path)
    for fmt, name in (("json", "summary.json"), ("markdown", "report.md"),
                      ("html", "index.html")):
        r = CliRunner().invoke(main, ["report", "--results-dir", str(res), "--out",
                                      str(tmp_path / "o"), "--specs", spec.path,
                                      "--format", fmt])
        assert r.exit_code == 0, r.output
        assert (tmp_path / "o" / name).is_file()


def test_gallery_size_sweep_plot(tmp_path):
    spec_file = tmp_path / "papers" / "toy" / "table2.yaml"
    spec_file.parent.mkdir(parents=True)
    spec_file.write_text(textwrap.dedent("""\
        paper: {id: toy, title: T, authors: [A], venue: V, year: 2020}
        table: {id: table2, caption: gallery sweep}
        metrics: [rank1@1000, rank1@100000, mAP@1000]
        datasets: {big: {name: market1501_500k, eval: {protocol: market500k}}}
        rows:
          - {name: Ours, method: toy, published: {big: {rank1@1000: 80, rank1@100000: 70, mAP@1000: 60}}}
        """))
    spec = load_spec(spec_file)
    res = tmp_path / "results"
    upsert_row(table_csv(res, "toy", "table2"), _row(
        spec, "Ours", "big", 0, extra={"rank1@1000": 79.0, "rank1@100000": 60.0,
                                       "mAP@1000": 58.5}))
    v = table_view(spec, res)
    n = v.rows[0].numbers
    assert n[("big", "rank1@100000")].mean == 60.0
    assert n[("big", "rank1@100000")].verdict.key == "worse"
    assert n[("big", "mAP@1000")].verdict.key == "reproduced"
    assert sorted(p.kind for p in v.plots) == ["gallery", "gallery"]


# --------------------------------------------------------------------------------------------
# Spec fields


def test_claims_naming_unknown_rows_are_errors(tmp_path):
    spec_file = tmp_path / "papers" / "toy" / "table1.yaml"
    spec_file.parent.mkdir(parents=True)
    spec_file.write_text(TOY.replace('rows: ["K=3", "K=1"]', 'rows: ["K=3", "K=l"]')
                         .replace("tolerances: {mAP: 1.0}", "tolerances: {mAP: 1.0}"))
    with pytest.raises(SpecError) as exc:
        load_spec(spec_file)
    line = TOY.splitlines().index('  - {kind: ordering, rows: ["K=3", "K=1"], metrics: [rank1]}')
    assert f"{spec_file}:{line + 1}: claims.1.rows.1: claim names unknown row 'K=l'" \
        in str(exc.value)
    assert "Did you mean 'K=" in str(exc.value)


def test_bad_tolerances_and_claim_kinds(tmp_path):
    spec_file = tmp_path / "papers" / "toy" / "table1.yaml"
    spec_file.parent.mkdir(parents=True)
    spec_file.write_text(TOY.replace("tolerances: {mAP: 1.0}", "tolerances: {mAPP: 1.0}"))
    with pytest.raises(SpecError, match="tolerance for unknown metric 'mAPP'"):
        load_spec(spec_file)
    spec_file.write_text(TOY.replace("kind: best", "kind: bestest"))
    with pytest.raises(SpecError, match="claims"):
        load_spec(spec_file)


@pytest.mark.parametrize("path, n_claims", [("papers/verif_identif/table2.yaml", 3),
                                            ("papers/fmn/table5.yaml", 1),
                                            ("papers/ledf/table4.yaml", 1)])
def test_paper_claims_hold_on_the_published_numbers(path, n_claims, tmp_path):
    """The claims written into the specs are the papers' own: they hold on the printed table."""
    spec = project_spec(path)
    assert len(spec.claims) == n_claims
    v = table_view(spec, tmp_path, with_plots=False)
    assert [c.published_status for c in v.claims] == [claims.HELD] * n_claims
    # Nothing run yet: every claim is undecided, not held or failed.
    assert {c.status for c in v.claims} == {claims.UNDECIDED}


def test_mixed_provenance_is_flagged(tmp_path):
    """Issue 13: a table whose numbers come from two commits / two dataset fingerprints says so
    on its page and on the index."""
    spec = load_spec(ROOT / "papers" / "verif_identif" / "table2.yaml")
    csv = table_csv(tmp_path, spec.paper.id, spec.table.id)
    base = {"paper": spec.paper.id, "table": spec.table.id, "dataset": "market", "seed": 0,
            "smoke": False, "synthetic": False, "status": "ok", "rank1": 50.0, "mAP": 30.0,
            "torch": "2.14.1", "device_name": "cpu"}
    upsert_row(csv, base | {"row": "ResNet-50 (I)", "git_commit": "a" * 40,
                            "dataset_fingerprint": "f1", "cell_id": "x1"})
    upsert_row(csv, base | {"row": "VGG16 (I)", "git_commit": "b" * 40,
                            "dataset_fingerprint": "f2", "cell_id": "x2"})
    from reid_bench.report.build import table_view

    v = table_view(spec, tmp_path, with_plots=False)
    text = " ".join(v.mixed_provenance)
    assert "2 code versions" in text and "aaaaaaaa" in text and "bbbbbbbb" in text
    assert "2 different dataset fingerprints" in text
    index = build_report(tmp_path, tmp_path / "site", [str(spec.path)])
    assert "mixed provenance" in index.read_text()
    assert "Mixed provenance" in (tmp_path / "site" / v.page).read_text()
    # One commit, one dataset: no warning.
    upsert_row(csv, base | {"row": "VGG16 (I)", "git_commit": "a" * 40,
                            "dataset_fingerprint": "f1", "cell_id": "x2"})
    assert table_view(spec, tmp_path, with_plots=False).mixed_provenance == []


def test_a_subset_run_is_never_the_headline(tmp_path):
    """A --subset run of the canonical spec is listed apart, labelled and "not comparable",
    even when the canonical cells have no result (issue 28: it was the headline, under a
    "not the canonical spec" banner)."""
    spec = load_spec(ROOT / "papers" / "verif_identif" / "table2.yaml")
    csv = table_csv(tmp_path, spec.paper.id, spec.table.id)
    base = {"paper": spec.paper.id, "table": spec.table.id, "dataset": "market", "seed": 0,
            "smoke": False, "synthetic": False, "status": "ok", "rank1": 50.0, "mAP": 30.0,
            "torch": "2.14.1", "device_name": "cpu", "variant": "subset", "subset": True}
    upsert_row(csv, base | {"row": "ResNet-50 (I)", "git_commit": "a" * 40, "cell_id": "x1"})
    upsert_row(csv, base | {"row": "VGG16 (I)", "git_commit": "b" * 40, "cell_id": "x2"})
    v = table_view(spec, tmp_path, with_plots=False)
    assert v.variant == "" and v.deviation == [] and v.headline_empty
    (sub,) = v.others
    assert sub.variant == "subset"
    nums = [n for r in sub.rows for n in r.numbers.values() if n.mean is not None]
    assert nums and all(n.flags == ["subset"] and n.verdict.key == "not comparable"
                        for n in nums)
