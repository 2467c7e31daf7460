"""Results CSVs of older schemas migrate; columns this version does not know are kept; CSV
exports for people defuse formula cells."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from toyspec import IDE_A, toy_spec, write_spec

from reid_bench.cli import main
from reid_bench.core.spreadsheet import FORMULA_START, defuse, to_csv
from reid_bench.store import results

# Written by ``reid_bench/store/results.py`` as of cb7bde2^ (the version before the ``tier`` and
# ``variant`` key columns; ``smoke`` was part of the key), with its own ``upsert_row``.
BEFORE_TIER = Path(__file__).parent / "golden" / "results_before_tier.csv"


def _old(tmp_path: Path) -> Path:
    p = tmp_path / "demo" / "table5.csv"
    p.parent.mkdir(parents=True)
    shutil.copy(BEFORE_TIER, p)
    return p


def test_a_csv_written_before_tier_existed_is_read_and_migrated(tmp_path):
    path = _old(tmp_path)
    assert "tier" not in pd.read_csv(path).columns  # really the old schema
    df = results.read_results(path)
    assert list(zip(df["row"], df["tier"], df["variant"], strict=True)) == [
        ("ResNet-50 (I)", "smoke", ""), ("ResNet-50 (I)", "full", ""), ("FMN", "smoke", "")]
    ok = {k: r["config_hash"] for k, r in results.cell_rows(path).items() if r["status"] == "ok"}
    assert ok == {
        ("ResNet-50 (I)", "market", None, 0, "smoke", ""): "bbbb",
        ("ResNet-50 (I)", "market", None, 0, "full", ""): "bbbb"}


def test_writing_into_an_old_csv_keeps_its_rows_in_the_new_schema(tmp_path):
    path = _old(tmp_path)
    results.upsert_row(path, {"paper": "demo", "table": "table5", "row": "FMN",
                              "dataset": "market", "seed": 1, "tier": "smoke",
                              "status": "ok", "rank1": 50.0, "config_hash": "cccc"})
    df = results.read_results(path)
    assert list(pd.read_csv(path, nrows=0).columns) == results.COLUMNS
    got = {(r["row"], r["tier"]): r["status"] for _, r in df.iterrows()}
    assert got == {("ResNet-50 (I)", "smoke"): "ok", ("ResNet-50 (I)", "full"): "ok",
                   ("FMN", "smoke"): "ok"}  # the failed FMN smoke cell was replaced
    assert df.loc[df["row"] == "ResNet-50 (I)", "rank1"].tolist() == [12.5, 80.5]


@pytest.mark.parametrize("missing", [["split"], ["tier"], ["variant"], ["tier", "variant"],
                                     ["split", "tier", "variant"]])
def test_any_older_key_layout_is_migrated(missing, tmp_path):
    path = _old(tmp_path)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "tier" not in missing:
        df["tier"] = ["smoke", "full", "smoke"]
    if "variant" not in missing:
        df["variant"] = ""
    df.drop(columns=[c for c in missing if c in df.columns]).to_csv(path, index=False)
    assert sum(r["status"] == "ok" for r in results.cell_rows(path).values()) == 2


# Values a newer version or a person may put in a column we do not know: each must come back
# byte for byte after our write.
EXTRA_VALUES = ["007", "1.50", "", "=1+1", "-3", "a,b", 'say "hi"', "NA", "nan", "True",
                "x\ny", "é"]


@pytest.mark.parametrize("names", [["note"], ["zz_new_metric", "note"], ["A b", "1"]])
def test_unknown_columns_are_kept_verbatim_on_write(names, tmp_path):
    path = tmp_path / "demo" / "table1.csv"
    base = {"paper": "demo", "table": "table1", "dataset": "market", "seed": 0,
            "tier": "full", "status": "ok"}
    for i, _ in enumerate(EXTRA_VALUES):
        results.upsert_row(path, {**base, "row": f"r{i}"})
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for j, n in enumerate(names):
        df[n] = list(itertools.islice(itertools.cycle(EXTRA_VALUES[j:] + EXTRA_VALUES[:j]),
                                      len(df)))
    df.to_csv(path, index=False)
    want = df.set_index("row")[names]
    results.upsert_row(path, {**base, "row": "new"})
    after = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(after.columns) == results.COLUMNS + names
    assert after.set_index("row").loc[want.index, names].equals(want)
    assert after.set_index("row").loc["new", names].tolist() == [""] * len(names)


# ------------------------------------------------------------------ formula cells

TEXTS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-1+1", "@SUM(A1)", "\tx", "\rx",
         "-cmd|' /C calc'!A0", "=1", "safe", "", "a=b", "-", "+", "-inf", "-nan"]


@pytest.mark.parametrize("text", TEXTS)
def test_text_a_spreadsheet_would_run_is_defused(text):
    out = defuse(text)
    runs = text.startswith(FORMULA_START)
    assert out == ("'" + text if runs else text)


@pytest.mark.parametrize("number", [-1, -1.5, -0.0, 0, 3.25, float("nan"), "-1.5", "+2",
                                    "-1e-3"])
def test_numbers_stay_numbers(number):
    assert defuse(number) is number or defuse(number) == number
    df = pd.DataFrame({"v": [number], "t": ["=x"]})
    back = pd.read_csv(pd.io.common.StringIO(to_csv(df)), keep_default_na=False)
    if isinstance(number, (int, float)) and number == number:
        assert float(back["v"][0]) == float(number)
    assert back["t"][0] == "'=x"


FORMULA_ROWS = ["=HYPERLINK(\"http://evil\",\"IDE\")", "+IDE two", "-IDE three", "@IDE four"]


def test_published_csv_defuses_formula_row_names(tmp_path):
    rows = "".join(f"  - name: {json.dumps(n)}\n    runnable: false\n    source: x\n"
                   f"    published: {{market: {{rank1: 1.0, mAP: 2.0}}}}\n"
                   for n in FORMULA_ROWS)
    spec = write_spec(tmp_path, toy_spec("rows:\n" + IDE_A + rows))
    res = CliRunner().invoke(main, ["published", str(spec), "--format", "csv"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(pd.io.common.StringIO(res.output), keep_default_na=False)
    names = set(df["row"])
    assert {"'" + n for n in FORMULA_ROWS} <= names and "IDE A" in names
    assert not any(str(v).startswith(FORMULA_START) for v in df.astype(str).values.ravel()
                   if not _number(v))


def test_compare_csv_defuses_formula_cells_and_keeps_negative_deltas(tmp_path):
    base = {"paper": "demo", "table": "table1", "dataset": "market", "tier": "full",
            "status": "ok"}
    for side, value in (("a", 60.0), ("b", 50.0)):
        for seed, n in itertools.product(range(2), FORMULA_ROWS):
            results.upsert_row(tmp_path / side / "demo" / "table1.csv",
                               {**base, "row": n, "seed": seed, "rank1": value + seed})
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "a"), str(tmp_path / "b"),
                                    "--format", "csv"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(pd.io.common.StringIO(res.output), keep_default_na=False)
    assert set(df["row"]) == {"'" + n for n in FORMULA_ROWS}
    assert (df["delta"].astype(float) == -10.0).all()  # a negative number, not "'-10.0"


def _number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True
