"""``run --splits`` runs a chosen part of a column's partitions, which the report shows as
``incomplete k/n partitions`` (issue 28: partial runs on purpose); an unwritable results folder
is one line naming it and ``--results-dir`` before any training (issue 28 item 9)."""

import errno
import itertools
import os
import re
import tempfile
import textwrap

import pytest
from click.testing import CliRunner
from toyspec import MARKET_PLAIN, register_plugin, splits_column, tiny_spec

from reid_bench.cli import main
from reid_bench.report.build import table_view
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.plan import Cell, config_hash
from reid_bench.table.selection import SelectionError, parse_splits

register_plugin()


@pytest.mark.parametrize("text, want", [
    ("0-4", {0, 1, 2, 3, 4}), ("0,3,7", {0, 3, 7}), ("0-2,9", {0, 1, 2, 9}), ("5", {5}),
    (" 1 , 1-2 ", {1, 2}), ("19-19", {19}),
])
def test_parse_splits(text, want):
    assert parse_splits(text) == want


@pytest.mark.parametrize("text", ["", "a", "1-", "-1", "4-2", "0-4x", "1..3", ",", "1-2-3"])
def test_parse_splits_refuses_with_examples(text):
    with pytest.raises(SelectionError, match="--splits"):
        parse_splits(text)


def _splits_spec(tmp_path, n=20):
    p = tiny_spec(tmp_path, [{"name": "a"}])
    p.write_text(p.read_text().replace(MARKET_PLAIN.splitlines()[1],
                                       splits_column("market", n).rstrip("\n")))
    return p


@pytest.mark.parametrize("arg, splits", [("0-4", [0, 1, 2, 3, 4]), ("0,3,7", [0, 3, 7]),
                                         ("19", [19])])
def test_dry_run_plans_only_the_chosen_partitions(tmp_path, arg, splits):
    p = _splits_spec(tmp_path)
    out = CliRunner().invoke(main, ["run", str(p), "--dry-run", "--splits", arg,
                                    "--results-dir", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    assert f"{len(splits)} cell(s) to plan" in out.output
    listed = [int(x) for x in re.findall(r"split (\d+)\s+seed", out.output)]
    assert listed == splits


@pytest.mark.parametrize("arg, message", [("20", "partition(s) [20] do not exist"),
                                          ("x", "is not an index")])
def test_splits_out_of_range_or_malformed(tmp_path, arg, message):
    out = CliRunner().invoke(main, ["run", str(_splits_spec(tmp_path)), "--dry-run",
                                    "--splits", arg])
    assert out.exit_code == 2 and message in out.output


def test_splits_on_a_table_without_partitions_is_refused(tmp_path):
    p = tiny_spec(tmp_path, [{"name": "a"}])
    out = CliRunner().invoke(main, ["run", str(p), "--dry-run", "--splits", "0-4"])
    assert out.exit_code == 2 and "none of the selected columns has them" in out.output


SPEC = """\
paper: {id: toy, title: Toy, authors: [A], venue: V, year: 2020}
table: {id: table1, caption: splits}
metrics: [rank1]
seeds: SEEDS
datasets:
  cuhk: {name: cuhk03, splits: 20, eval: {protocol: market}}
rows:
  - {name: part, method: ide, published: {cuhk: {rank1: 60.0}}}
"""


@pytest.mark.parametrize("seeds, done", list(itertools.product([1, 2], [1, 5, 19])))
def test_partial_partitions_read_k_of_n_partitions(tmp_path, seeds, done):
    p = tmp_path / "papers" / "toy" / "table1.yaml"
    p.parent.mkdir(parents=True)
    p.write_text(textwrap.dedent(SPEC).replace("SEEDS", str(seeds)))
    spec = load_spec(p)
    res = tmp_path / "results"
    for split in range(done):
        cell = Cell(spec.row("part"), "cuhk", 0, "full", split)
        results.upsert_row(results.table_csv(res, "toy", "table1"), {
            "paper": "toy", "table": "table1", "row": "part", "dataset": "cuhk", "split": split,
            "seed": 0, "status": "ok", "rank1": 61.0, "config_hash": config_hash(spec, cell),
            "synthetic": False, "cell_id": cell.id})
    num = table_view(spec, res, with_plots=False).rows[0].numbers[("cuhk", "rank1")]
    assert num.mean is None and num.partial_mean == 61.0
    label = num.verdict.label
    if seeds == 1:  # k of the column's n partitions
        assert label.startswith(f"incomplete {done}/20 partitions"), label
    else:  # runs are partitions × seeds
        assert label.startswith(f"incomplete {done}/{20 * seeds}") and "partitions" not in label
    assert num.verdict.symbol == "◐"


# ------------------------------------------------------------------ unwritable results folder

def _one_line_error(out, folder):
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and str(folder) in lines[0] and "--results-dir" in lines[0], lines
    return lines[0]


def test_results_folder_under_a_file_is_one_line(tmp_path):
    p = tiny_spec(tmp_path, [{"name": "a"}])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = CliRunner().invoke(main, ["run", str(p), "--smoke", "--results-dir",
                                    str(blocker / "results")])
    _one_line_error(out, blocker / "results")


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_unwritable_results_folder_is_one_line_before_training(tmp_path, monkeypatch, err):
    p = tiny_spec(tmp_path, [{"name": "a"}])

    def refuse(*a, **k):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    trained = []
    monkeypatch.setattr("reid_bench.run.runner.Runner.run", lambda *a: trained.append(1))
    out = CliRunner().invoke(main, ["run", str(p), "--smoke", "--results-dir",
                                    str(tmp_path / "r")])
    assert os.strerror(err) in _one_line_error(out, tmp_path / "r") and not trained
