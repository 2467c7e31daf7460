"""A results fixture that exercises every branch of the markdown report (used by
tests/test_report_markdown.py; ``tests/golden/report.md`` is the markdown the pre-jinja
hand-built renderer produced on it)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd

from reid_bench.spec import load_spec
from reid_bench.store.results import table_csv, upsert_row

SPEC = """\
paper: {id: mdfx, title: Markdown Fixture, authors: [A, B], venue: V, year: 2021}
table: {id: table1, caption: "fixture | with a pipe"}
metrics: [rank1, mAP]
datasets:
  market:
    name: market1501
    label: Market
    eval:
      protocol: market
      ap: {value: standard, assumed: "AP not stated", replaces: "area under the PR curve", alternatives: [market_matlab]}
recipe:
  train: {lr: {value: 0.01, source: "Sec. 2"}, epochs: {value: 60, assumed: "not stated", alternatives: [30]}}
rows:
  - {name: A, method: ide, published: {market: {rank1: 70.0, mAP: 50.25}},
     params: {backbone: resnet50, dropout: {value: 0.0, assumed: "none named", alternatives: [0.5]}}}
  - {name: B, method: ide, params: {backbone: resnet50}, published: {market: {rank1: 71.5, mAP: 51.0}}}
  - {name: C, method: ide, params: {backbone: resnet50}, published: {market: {rank1: 60.0, mAP: 40.0}}}
  - {name: Quoted, runnable: false, source: "[9]", published: {market: {rank1: 60.0, mAP: null}}}
claims:
  - {kind: improvement, row: B, baseline: A, margin: 1.0, text: "B beats A"}
  - {kind: ordering, rows: [A, C], metrics: [rank1]}
"""

SHAKE = """\
paper: {id: mdfx, title: Markdown Fixture, authors: [A], venue: V, year: 2021}
table: {id: table2, caption: shakedown only}
metrics: [rank1]
datasets:
  market: {name: market1501, eval: {protocol: market, ap: standard}}
recipe:
  train:
    lr: {value: 0.01, source: "Sec. 2"}
rows:
  - {name: A, method: ide, params: {backbone: resnet50}, published: {market: {rank1: 70.0}}}
"""


def _row(spec, name, seed, r1, m, **kw) -> dict:
    return {"paper": spec.paper.id, "table": spec.table.id, "row": name, "dataset": "market",
            "seed": seed, "status": "ok", "rank1": r1, "mAP": m, "method": "ide",
            "protocol": "market", "ap": "standard", "distance": "euclidean",
            "dataset_name": "market1501", "synthetic": False, "git_commit": "fixture",
            "git_dirty": False, "spec_hash": spec.spec_hash, "config_hash": "fixture",
            "dataset_fingerprint": "fx", "device": "cpu", "device_name": "fixture",
            "torch": "x", "wall_s": 1.0, "cell_id": f"{name}-{seed}", **kw}


def write_fixture(root: Path) -> tuple[list[str], Path]:
    """Two specs and their results under ``root``; returns (spec paths, results dir)."""
    paths = []
    tables = {"table1": SPEC, "table2": SHAKE,
              "table3": SHAKE.replace("table2", "table3").replace("shakedown only", "subset"),
              "table4": SHAKE.replace("table2", "table4").replace("shakedown only", "smoke")}
    for name, text in tables.items():
        p = root / "papers" / "mdfx" / f"{name}.yaml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        paths.append(str(p))
    res = root / "results"
    spec = load_spec(paths[0])
    csv = table_csv(res, "mdfx", "table1")
    upsert_row(csv, _row(spec, "A", 0, 70.4, 50.1, precision="bf16"))
    upsert_row(csv, _row(spec, "A", 1, 71.0, 50.9, precision="bf16"))
    upsert_row(csv, _row(spec, "B", 0, 74.0, 53.0))
    upsert_row(csv, _row(spec, "B", 1, 75.0, 54.0))
    upsert_row(csv, _row(spec, "C", 0, None, None, status="failed",
                         error="RuntimeError: boom | at step 3"))
    # Another tier, a --set override, a subset run and an assumption variant.
    upsert_row(csv, _row(spec, "A", 0, 10.0, 5.0, tier="smoke", synthetic=True,
                         dataset_name="synthetic"))
    upsert_row(csv, _row(spec, "B", 0, 73.0, 52.0, variant="set:train.lr=0.02",
                         overrides=json.dumps({"train.lr": 0.02})))
    upsert_row(csv, _row(spec, "B", 0, 72.0, 52.5, variant="subset", subset=True))
    upsert_row(csv, _row(spec, "A", 0, 69.0, 49.0, variant="variant:train.epochs=30"))
    # A hand edit of B seed 1 (its row digest no longer matches).
    df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    df.loc[(df["row"] == "B") & (df["seed"] == "1"), "mAP"] = "58.0"
    df.to_csv(csv, index=False)
    shake = load_spec(paths[1])
    upsert_row(table_csv(res, "mdfx", "table2"),
               _row(shake, "A", 0, 3.0, None, tier="shakedown", synthetic=True))
    sub = load_spec(paths[2])
    upsert_row(table_csv(res, "mdfx", "table3"),
               _row(sub, "A", 0, 69.5, None, variant="subset", subset=True))
    smoke = load_spec(paths[3])
    upsert_row(table_csv(res, "mdfx", "table4"),
               _row(smoke, "A", 0, 9.0, None, tier="smoke", synthetic=True))
    return paths, res
