"""An aggregate over fewer splits × seeds than planned reads ``incomplete k/n`` and never
shows its partial mean as the table's number."""

import json
import textwrap

from reid_bench.report.build import build_report, table_view
from reid_bench.spec import load_spec
from reid_bench.store.results import cell_id, table_csv, upsert_row

SPEC = """\
paper: {id: toy, title: Toy, authors: [A], venue: V, year: 2020}
table: {id: table1, caption: splits}
metrics: [rank1]
seeds: 2
datasets:
  cuhk: {name: cuhk03, splits: 3, eval: {protocol: market}}
  market: {name: market1501, eval: {protocol: market}}
rows:
  - {name: full, method: ide, published: {cuhk: {rank1: 60.0}, market: {rank1: 70.0}}}
  - {name: part, method: ide, published: {cuhk: {rank1: 60.0}, market: {rank1: 70.0}}}
"""


def _hash(spec, name, ds, split, seed):
    """The config hash `run` would record for the cell now, so the rows are not flagged stale."""
    from pathlib import Path

    from reid_bench.table.plan import Cell
    from reid_bench.table.status import ConfigHashes

    return ConfigHashes(spec, Path("results")).current(
        Cell(spec.row(name), ds, seed, "full", split)) or "fx"


def _row(name, ds, split, seed, r1, spec):
    return {"paper": "toy", "table": "table1", "row": name, "dataset": ds, "split": split,
            "seed": seed, "smoke": False, "status": "ok", "rank1": r1, "method": "ide",
            "protocol": "market", "ap": "standard", "distance": "euclidean",
            "dataset_name": ds, "synthetic": False, "git_commit": "test-fixture",
            "git_dirty": False, "config_hash": _hash(spec, name, ds, split, seed), "cell_id": cell_id(name, ds, seed,
                                                                       "full", split)}


def test_partial_splits_or_seeds_are_incomplete_not_a_mean(tmp_path):
    p = tmp_path / "papers" / "toy" / "table1.yaml"
    p.parent.mkdir(parents=True)
    p.write_text(textwrap.dedent(SPEC))
    spec = load_spec(p)
    res = tmp_path / "results"
    csv = table_csv(res, "toy", "table1")
    for split in range(3):                     # "full": 3 splits × 2 seeds on cuhk
        for seed in range(2):
            upsert_row(csv, _row("full", "cuhk", split, seed, 60.0 + split, spec))
    for seed in range(2):
        upsert_row(csv, _row("full", "market", None, seed, 70.0, spec))
    upsert_row(csv, _row("part", "cuhk", 0, 0, 90.0, spec))      # 1 of 6 runs
    upsert_row(csv, _row("part", "cuhk", 1, 0, 92.0, spec))      # 2 of 6 runs
    upsert_row(csv, _row("part", "market", None, 0, 70.0, spec))  # 1 of 2 seeds
    rows = {r.name: r for r in table_view(spec, res, with_plots=False).rows}
    full = rows["full"].numbers[("cuhk", "rank1")]
    assert (full.runs, full.planned, full.incomplete) == (6, 6, False)
    assert full.mean == 61.0 and full.verdict.key == "reproduced"
    part = rows["part"].numbers[("cuhk", "rank1")]
    assert (part.runs, part.planned, part.incomplete) == (2, 6, True)
    assert part.mean is None and part.partial_mean == 91.0 and part.delta is None
    assert part.verdict.key == "incomplete" and part.verdict.label.startswith("incomplete 2/6")
    seeds = rows["part"].numbers[("market", "rank1")]
    assert (seeds.runs, seeds.planned, seeds.verdict.key) == (1, 2, "incomplete")
    assert rows["part"].verdict == "incomplete"

    md = build_report(res, tmp_path / "md", [str(p)], fmt="markdown").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| part"))
    assert "incomplete 2/6" in line and "91.00" not in line and "90.00" not in line
    html = (build_report(res, tmp_path / "html", [str(p)]).parent / "toy-table1.html").read_text()
    assert "incomplete 2/6" in html and "91.00" not in html
    js = json.loads(build_report(res, tmp_path / "js", [str(p)], fmt="json").read_text())
    num = next(n for n in js["tables"][0]["numbers"] if n["row"] == "part"
               and n["dataset"] == "cuhk")
    assert (num["mean"], num["runs"], num["planned"], num["verdict"]) == (None, 2, 6,
                                                                          "incomplete")
