"""A column can train on one dataset and evaluate on another (Verif-Identif Table VII)."""

import json
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from toyspec import (
    MARKET_PLAIN,
    cli_cmd,
    plugin_env,
    register_plugin,
    splits_column,
    tiny_spec,
)

from reid_bench.cli import main
from reid_bench.data import load_dataset
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.finished import cell_fingerprint
from reid_bench.table.plan import plan

register_plugin()


def write_column_spec(tmp_path, column_yaml: str):
    """The reliability tests' one-row test_tiny spec with its ``market`` column replaced."""
    p = tiny_spec(tmp_path, [{"name": "a"}])
    p.write_text(p.read_text().replace(MARKET_PLAIN.splitlines()[1], column_yaml))
    return load_spec(p)


def test_train_source_is_used_for_fit_and_keyed(tmp_path, shared_data_root):
    spec = write_column_spec(
        tmp_path, "  market:\n    name: synthetic\n    train: {name: synthetic, options: {seed: 7, "
        "num_train_ids: 12}}\n    eval: {protocol: market}")
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root))
    summary = runner.run(plan(spec))
    assert summary.ok, summary.failed
    row = results.read_results(runner.csv).iloc[0]
    evaluated = load_dataset("synthetic", shared_data_root)
    trained_on = load_dataset("synthetic", shared_data_root, seed=7, num_train_ids=12)
    # Either dataset changing changes the numbers: the row's fingerprint covers both.
    assert row["dataset_fingerprint"] == cell_fingerprint(evaluated.fingerprint,
                                                          trained_on.fingerprint)
    details = json.loads((runner.cells_dir / f"{row['cell_id']}.json").read_text())
    key = json.loads((Path(details["trained_artifact"]) / "config.json").read_text())
    assert key["fingerprint"] == trained_on.fingerprint
    assert key["dataset"] == {"name": "synthetic", "options": {"seed": 7, "num_train_ids": 12}}


SPLITS_COLUMN = splits_column("market", 3).rstrip("\n")


def test_split_axis_plans_one_cell_per_split(tmp_path):
    """A column with ``splits: N`` plans N cells with distinct ids; the smoke stand-in has none."""
    spec = write_column_spec(tmp_path, SPLITS_COLUMN)
    assert [c.split for c in plan(spec)] == [0, 1, 2]
    assert len({c.id for c in plan(spec)}) == 3
    assert [c.split for c in plan(spec, smoke=True)] == [None]


@pytest.mark.slow
def test_rerun_skips_exactly_the_finished_splits(tmp_path, shared_data_root):
    """A run SIGKILLed while evaluating split 1 leaves split 0 finished (the ``test_splits``
    dataset takes a ``split`` option); the re-run leaves split 0's row untouched and runs
    splits 1 and 2."""
    write_column_spec(tmp_path, SPLITS_COLUMN)
    spec = tmp_path / "papers" / "demo" / "table1.yaml"
    out = tmp_path / "r"
    first = subprocess.run(cli_cmd(spec, out, shared_data_root, smoke=False),
                           env=plugin_env(REID_BENCH_FAULT="evaluate:2"), capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    csv = results.table_csv(out, "demo", "table1")
    done = results.read_results(csv)
    assert done["split"].tolist() == [0] and done["status"].tolist() == ["ok"]
    second_started = datetime.now(timezone.utc)
    res = CliRunner().invoke(main, cli_cmd(spec, out, shared_data_root, smoke=False)[3:])
    assert res.exit_code == 0, res.output
    df = results.read_results(csv).set_index("split").sort_index()
    assert df.index.tolist() == [0, 1, 2] and (df["status"] == "ok").all()
    started = pd.to_datetime(df["started_at"], utc=True)
    # Split 0 is the first run's row, byte for byte; splits 1 and 2 ran in the second run.
    pd.testing.assert_series_equal(df.loc[0], done.set_index("split").loc[0])
    assert (started.loc[[1, 2]] >= pd.Timestamp(second_started).floor("s")).all(), started
    # started_at has one-second resolution: the first run's cell may share the second in which
    # the second run began (a fast machine); the byte-equal row above is what proves no rerun.
    assert started.loc[0] <= pd.Timestamp(second_started).floor("s")


def test_split_key_round_trip(tmp_path):
    p = tmp_path / "t.csv"
    base = {"paper": "p", "table": "table1", "row": "r", "dataset": "c", "seed": 0,
            "smoke": False, "status": "ok", "config_hash": "h"}
    for split in (None, 0, 1, None, 1):
        results.upsert_row(p, base | {"split": split})
    # Keys in results.KEY order: (row, dataset, split, seed, tier, variant).
    assert {k: r["config_hash"] for k, r in results.cell_rows(p).items()} == {
        ("r", "c", None, 0, "full", ""): "h", ("r", "c", 0, 0, "full", ""): "h",
        ("r", "c", 1, 0, "full", ""): "h"}
