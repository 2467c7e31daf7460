"""A column can train on one dataset and evaluate on another (Verif-Identif Table VII)."""

import json
import sys
from pathlib import Path

from reid_bench import results as R
from reid_bench.data import load_dataset
from reid_bench.plan import plan
from reid_bench.runner import Runner, RunOptions
from reid_bench.spec import load_spec

sys.path.insert(0, str(Path(__file__).resolve().parent / "plugins"))
import rb_test_methods  # noqa: E402,F401  (registers test_tiny)
from test_reliability import spec_text  # noqa: E402


def write_column_spec(tmp_path, column_yaml: str):
    """The reliability tests' one-row test_tiny spec with its ``market`` column replaced."""
    text = spec_text([{"name": "a"}]).replace(
        "  market: {name: market1501, eval: {protocol: market}}", column_yaml)
    p = tmp_path / "papers" / "demo" / "table1.yaml"
    p.parent.mkdir(parents=True)
    p.write_text(text)
    return load_spec(p)


def test_train_source_is_used_for_fit_and_keyed(tmp_path, shared_data_root):
    spec = write_column_spec(
        tmp_path, "  market:\n    name: synthetic\n    train: {name: synthetic, options: {seed: 7, "
        "num_train_ids: 12}}\n    eval: {protocol: market}")
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                     log=lambda m: None))
    summary = runner.run(plan(spec))
    assert summary.ok, summary.failed
    row = R.read_results(runner.csv).iloc[0]
    evaluated = load_dataset("synthetic", shared_data_root)
    trained_on = load_dataset("synthetic", shared_data_root, seed=7, num_train_ids=12)
    assert row["dataset_fingerprint"] == evaluated.fingerprint
    details = json.loads((runner.cells_dir / f"{row['cell_id']}.json").read_text())
    key = json.loads((Path(details["trained_artifact"]) / "config.json").read_text())
    assert key["fingerprint"] == trained_on.fingerprint
    assert key["dataset"] == {"name": "synthetic", "options": {"seed": 7, "num_train_ids": 12}}


def test_split_axis_one_cell_per_split_and_resume(tmp_path, shared_data_root):
    """A column with ``splits: N`` plans N cells (loader option split=i), records the split in
    the CSV key, and a re-run skips every finished split."""
    spec = write_column_spec(
        tmp_path, "  market:\n    name: synthetic\n    splits: 2\n    options: {num_train_ids: 12}\n"
        "    eval: {protocol: market}")
    cells = plan(spec)
    assert [c.split for c in cells] == [0, 1] and len({c.id for c in cells}) == 2
    assert [c.split for c in plan(spec, smoke=True)] == [None]  # no splits in the stand-in
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", data_root=shared_data_root,
                                     log=lambda m: None))
    # The synthetic loader has no ``split`` option: each split cell fails with that error,
    # which proves the option reaches the loader; the keys stay distinct.
    runner.run(cells)
    df = R.read_results(runner.csv)
    assert sorted(df["split"].tolist()) == [0, 1]
    assert df["error"].str.contains("split").all()
    # Upserting the same cell again replaces it (split is part of the key, also when read back).
    runner.run(cells)
    assert len(R.read_results(runner.csv)) == 2


def test_split_key_round_trip(tmp_path):
    p = tmp_path / "t.csv"
    base = {"paper": "p", "table": "table1", "row": "r", "dataset": "c", "seed": 0,
            "smoke": False, "status": "ok", "config_hash": "h"}
    for split in (None, 0, 1, None, 1):
        R.upsert_row(p, base | {"split": split})
    # Keys in results.KEY order: (row, dataset, split, seed, tier, variant).
    assert R.finished_cells(p) == {("r", "c", None, 0, "full", ""): "h",
                                   ("r", "c", 0, 0, "full", ""): "h",
                                   ("r", "c", 1, 0, "full", ""): "h"}
