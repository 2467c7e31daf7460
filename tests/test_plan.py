"""reid_bench.table.plan: cells, their one key type, and config hashes without a Runner.

The expected hashes below were produced by main at commit 17dc1d7, before ``cell_config`` moved
out of ``Runner``, with ``stable_hash(Runner(spec, RunOptions(**opts)).cell_config(cell))`` for
the first cells (and the last) of ``plan(spec, tier=..., variant=...)`` of the real specs.
A config hash that changes makes every finished cell of every user look stale (re-run), so any
change here must be deliberate.

Deliberate changes since: ledf/table2 (issue 26: CUHK03 single-shot scored with the trapezoid
AP its published numbers require, the 10 single-shot repeats, ``tap`` and the ImageNet start
traced as assumed) and verif_identif/table7 (the dropout rate, pair BatchNorm and mean colour
traced as assumed) and deep_person/table3 (cosine distance, CUHK03 query view and repeats
traced as assumed): their spec values or provenance changed, so their hashes did.
Issue 26 item 3 also traced in every spec the recipe values it had left to the
Recipe defaults (same training, new recipe keys in the config), which re-hashed
every cell below once more.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from reid_bench.core.errors import DatasetError
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.overrides import compose_variant, set_parts
from reid_bench.table.plan import CellKey, PlanOptions, cells_from_keys, config_hash, plan
from reid_bench.table.shakedown import ShakedownOptions

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = {"train.epochs": 3}

# (spec, tier, options, variant, [(row, dataset, split, seed, expected hash)])
CASES = [
    ("ledf/table2", "full", {}, "", [
        ("LEDF", "cuhk03", 0, 0, "16d951c6ff68404d"),
        ("LEDF", "cuhk03", 1, 0, "3c7862d4f040e1d9"),
        ("LEDF", "cuhk03", 19, 0, "546fecc12c9c19a7")]),
    ("verif_identif/table7", "full", {}, "", [  # trains on another dataset than it tests
        ("Finetuned-Baseline (CaffeNet)", "caffenet", None, 0, "94d3bf3189e05288"),
        ("Ours (VGG16)", "vgg16", None, 0, "7ca3b47553dfefab")]),
    ("fmn/table5", "smoke", {"smoke": True}, "", [
        ("Pool1", "market", None, 0, "9738c9cfdc0a3a02"),
        ("Res4", "market", None, 0, "dbdc83e21ec4b1a4")]),
    ("fmn/table5", "full", {"overrides": OVERRIDES}, compose_variant(set_parts(OVERRIDES)), [
        ("Pool1", "market", None, 0, "157c3299a4ea339b"),
        ("Res4", "market", None, 0, "6fdb416d5929c2cd")]),
    ("fmn/table5", "shakedown", {"shakedown": ShakedownOptions(steps=2, max_batch=4)}, "", [
        ("Pool1", "market", None, 0, "7357fae19cc0aa60"),
        ("Res2", "market", None, 0, "e444fc8b6b7838b1")]),
]


@pytest.mark.parametrize("name,tier,opts,variant,expected", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_config_hash_is_what_the_runner_recorded_before(name, tier, opts, variant, expected):
    spec = load_spec(ROOT / "papers" / f"{name}.yaml")
    by_key = {(c.row.name, c.dataset, c.split, c.seed): c
              for c in plan(spec, tier=tier, variant=variant)}
    for row, ds, split, seed, want in expected:
        cell = by_key[(row, ds, split, seed)]
        assert config_hash(spec, cell, PlanOptions(**opts)) == want, (row, ds, split)


def test_weights_file_enters_the_hash_as_before(tmp_path):
    """--weights replaces the backbone's ImageNet file: its sha256 is part of the config."""
    w = tmp_path / "w.pth"
    w.write_bytes(b"reid-bench test weights")
    spec = load_spec(ROOT / "papers/deep_person/table3.yaml")
    cell = plan(spec)[0]
    assert (cell.dataset, cell.split) == ("labeled", 0)
    assert config_hash(spec, cell, PlanOptions(weights={"resnet50": str(w)})) \
        == "572a4499dc587cc9"
    assert config_hash(spec, cell) != "572a4499dc587cc9"


def test_smoke_without_stand_in_cannot_be_planned():
    spec = load_spec(ROOT / "papers/verif_identif/table7.yaml")
    with pytest.raises(DatasetError, match="no synthetic stand-in"):
        config_hash(spec, plan(spec, smoke=True)[0], PlanOptions(smoke=True))


def test_planning_and_hashing_build_no_runner():
    """status, the launchers and --dry-run hash cells through plan: no Runner (whose
    construction resolves the speed switches and sets cuDNN state) is imported, let alone built."""
    import subprocess

    code = ("import sys; from reid_bench.table.plan import plan, config_hash; "
            "from reid_bench.spec import load_spec; from reid_bench.table.status import table_status; "
            f"s = load_spec({str(ROOT / 'papers/ledf/table2.yaml')!r}); "
            "config_hash(s, plan(s)[0]); table_status(s, 'no-results-here'); "
            "from reid_bench.table.rowstate import RowStates; "
            "RowStates(s).state({'row': 'x', 'tier': 'full', 'status': 'ok', "
            "'precision': 'bf16', 'config_hash': 'h'}); "
            "print(sorted(m for m in ('reid_bench.run.runner', 'reid_bench.engine.accel') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]"


def test_cell_key_order_id_and_json_round_trip():
    spec = load_spec(ROOT / "papers/ledf/table2.yaml")
    cell = plan(spec, variant="subset")[3]
    key = cell.key
    # Tuple order is the results CSV's key: a cell's key equals its CSV row's key.
    assert key._fields == tuple(results.KEY)
    row = {"row": cell.row.name, "dataset": cell.dataset, "split": float(cell.split),
           "seed": cell.seed, "tier": cell.tier, "variant": cell.variant}
    assert results.row_key(row) == key and hash(results.row_key(row)) == hash(key)
    assert str(key) == cell.id == "ledf__cuhk03__split3__s0__v" + cell.id.split("__v")[1]
    # The launchers' JSON form: what the job files hold, read back to the same cell.
    d = json.loads(json.dumps(key.as_dict()))
    assert d == {"row": "LEDF", "dataset": "cuhk03", "seed": 0, "tier": "full", "split": 3,
                 "variant": "subset"}
    assert CellKey.from_dict(d) == key
    assert cells_from_keys(spec, [d])[0] == cell
    assert cells_from_keys(spec, [key])[0] == cell
