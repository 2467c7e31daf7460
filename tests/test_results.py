"""The results CSV: atomic upsert, one line per cell, clear errors for hand-edited files."""

import pandas as pd
import pytest

from reid_bench.core.errors import ResultsError
from reid_bench.store import results


def _row(**kw):
    base = {"paper": "p", "table": "table1", "row": "r", "dataset": "market", "seed": 0,
            "smoke": True, "status": "ok", "rank1": 50.0, "mAP": 30.0, "config_hash": "abc"}
    return base | kw


def test_upsert_replaces_same_cell_and_keeps_others(tmp_path):
    p = tmp_path / "p" / "table1.csv"
    results.upsert_row(p, _row())
    results.upsert_row(p, _row(seed=1, rank1=60.0))
    results.upsert_row(p, _row(rank1=55.0))  # same key as the first: replaced
    df = results.read_results(p)
    assert len(df) == 2
    assert sorted(df["rank1"].tolist()) == [55.0, 60.0]
    assert list(df.columns) == results.COLUMNS
    assert not list(tmp_path.rglob(".*.tmp"))  # no temp file left behind


def test_cell_rows_keyed_by_cell(tmp_path):
    p = tmp_path / "t.csv"
    results.upsert_row(p, _row())
    results.upsert_row(p, _row(row="bad", status="failed", error="boom"))
    rows = results.cell_rows(p)
    assert {k: r["status"] for k, r in rows.items()} == {
        ("r", "market", None, 0, "smoke", ""): "ok", ("bad", "market", None, 0, "smoke", ""):
        "failed"}
    assert rows[("r", "market", None, 0, "smoke", "")]["config_hash"] == "abc"


@pytest.mark.parametrize("mutate, message", [
    (lambda df: df.drop(columns=["status"]), "missing column"),
    (lambda df: df.assign(status="great"), "invalid status"),
    (lambda df: pd.concat([df, df]), "more than once"),
])
def test_hand_edited_csv_is_refused_with_file_name(tmp_path, mutate, message):
    p = tmp_path / "t.csv"
    results.upsert_row(p, _row())
    mutate(results.read_results(p)).to_csv(p, index=False)
    with pytest.raises(ResultsError) as e:
        results.read_results(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_garbage_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"\x00\xff\xfe not a csv \n\"unterminated")
    with pytest.raises(ResultsError) as e:
        results.read_results(p)
    assert str(p) in str(e.value)
