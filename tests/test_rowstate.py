"""reid_bench.table.rowstate: a recipe change marks a result stale in every tier and variant (issue 28
item 4: subset and variant results were never called stale); the finished-cell rule; data not
checked without a current fingerprint."""

from __future__ import annotations

import itertools
import textwrap

import pytest

from reid_bench.spec import load_spec
from reid_bench.store.row_digest import row_digest
from reid_bench.table.overrides import compose_variant
from reid_bench.table.rowstate import DATA_CHANGED, DATA_MATCH, DATA_NOT_CHECKED, RowStates

SPEC = """\
paper: {id: rsu, title: T, authors: [A], venue: V, year: 2024}
table: {id: table1, caption: c}
metrics: [rank1]
datasets:
  market: {name: market1501, eval: {protocol: market, ap: standard}}
recipe:
  train:
    lr: {value: 0.01, source: "Sec. 2"}
    weight_decay: {value: WD, source: "Sec. 2"}
    epochs: {value: 60, assumed: "not stated", alternatives: [30]}
rows:
  - {name: A, method: ide, params: {backbone: resnet50}, published: {market: {rank1: 70.0}}}
"""
TIERS = ("full", "smoke", "shakedown", "smoke_recipe")
PARTS = {"canonical": [], "set": ["set:train.lr=0.02"],
         "variant": ["variant:recipe.train.epochs=30"]}


def _spec(tmp_path, wd: float):
    f = tmp_path / "papers" / "rsu" / "table1.yaml"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(textwrap.dedent(SPEC).replace("WD", str(wd)))
    return load_spec(f)


def _rec(tier: str, variant: str, **kw) -> dict:
    rec = {"row": "A", "dataset": "market", "split": None, "seed": 0, "tier": tier,
            "variant": variant, "status": "ok",
            "overrides": '{"train.lr": 0.02}' if "set:" in variant else None,
            "shakedown_steps": 1 if tier == "shakedown" else None,
            "max_batch": 4 if tier == "shakedown" else None,
            "pretrained": "none" if tier == "shakedown" else "imagenet", **kw}
    return {**rec, "row_digest": row_digest(rec)}  # as written by the runner: not edited


@pytest.mark.parametrize("tier,kind,subset", list(itertools.product(TIERS, PARTS, (False, True))))
def test_a_recipe_change_makes_every_tier_and_variant_stale(tmp_path, tier, kind, subset):
    variant = compose_variant(PARTS[kind] + (["subset"] if subset else []))
    before = _spec(tmp_path, 0.0005)
    rec = _rec(tier, variant)
    rec = _rec(tier, variant, config_hash=RowStates(before).current_config_hash(rec))
    assert rec["config_hash"] is not None
    assert not RowStates(before).state(rec).stale
    after = _spec(tmp_path, 0.001)  # weight_decay changed in the spec
    st = RowStates(after).state(rec)
    assert st.stale and "stale" in st.flags and st.withheld == "stale"


def test_finished_for_needs_the_same_config_and_data():
    st = RowStates().state(_rec("full", "", config_hash="h1", dataset_fingerprint="fp1"))
    assert st.finished_for("h1", "fp1")
    assert not st.finished_for("h1", None)  # data not checked: never skipped
    assert not st.finished_for("h2", "fp1")  # recipe changed
    assert not st.finished_for("h1", "fp2")  # the data changed under the same config
    failed = RowStates().state(_rec("full", "", status="failed", config_hash="h1"))
    assert not failed.finished_for("h1", None)


def test_data_is_checked_only_against_a_known_fingerprint():
    rec = _rec("full", "", config_hash="h", dataset_name="market1501", dataset_fingerprint="a")
    assert RowStates().state(rec).data == DATA_NOT_CHECKED
    assert "data changed" not in RowStates().state(rec).flags
    assert RowStates(data_fingerprints={"market1501": "a"}).state(rec).data == DATA_MATCH
    changed = RowStates(data_fingerprints={"market1501": "b"}).state(rec)
    assert changed.data == DATA_CHANGED and changed.withheld == "data changed"


@pytest.mark.parametrize("tier,subset,kind", list(itertools.product(TIERS, (False, True),
                                                                    PARTS)))
def test_only_full_tier_results_of_the_pages_own_variant_are_the_headline(tier, subset, kind):
    variant = compose_variant(PARTS[kind] + (["subset"] if subset else []))
    st = RowStates().state(_rec(tier, variant, config_hash="h"))
    assert (st.block == "headline") == (tier == "full" and variant == "")
    assert st.comparable == (tier == "full" and variant == "")


@pytest.mark.parametrize("seed", [4408, 856, 0])
def test_a_digest_that_reads_as_a_number_is_compared_as_text(seed):
    """Seed 4408 gives the digest "9165716992052516" (856: "5e78669606808239"), which parse as
    numbers: the stored digest was read as one, so such a row was called edited (seen on an
    LGEU row, "57293887554656e0", in the issue 28 report check)."""
    from reid_bench.store.row_digest import row_edited

    rec = {"row": "A", "seed": seed}
    rec["row_digest"] = row_digest(rec)
    assert row_edited(rec) == ""
    assert row_edited({**rec, "seed": seed + 1})  # an edit is still caught


@pytest.mark.parametrize("tier,kind", list(itertools.product(TIERS, PARTS)))
def test_the_replanned_hash_is_the_one_a_run_records(tmp_path, tier, kind):
    """What the runner hashes (``plan.cell_config`` with the run's options: --smoke, --set,
    --variant via ``apply_variants``, --shakedown's steps / pretrained / batch cap) is what
    ``RowStates`` rebuilds from the row, so a finished row is never called stale."""
    from reid_bench.table.overrides import parse_sets, set_parts
    from reid_bench.table.plan import PlanOptions, config_hash, plan
    from reid_bench.table.shakedown import ShakedownOptions
    from reid_bench.table.variants import apply_variants

    spec = _spec(tmp_path, 0.0005)
    sets = parse_sets(["train.lr=0.02"]) if kind == "set" else {}
    cells = plan(spec, tier=tier, variant=compose_variant(set_parts(sets)))
    if kind == "variant":
        spec, cells = apply_variants(spec, ["recipe.train.epochs=30"], cells,
                                     smoke=tier in ("smoke", "smoke_recipe"))
    (cell,) = cells
    shake = ShakedownOptions(steps=1, pretrained="none", max_batch=4) \
        if tier == "shakedown" else None
    recorded = config_hash(spec, cell, PlanOptions(smoke=tier == "smoke", overrides=sets,
                                                   shakedown=shake))
    rec = _rec(tier, cell.variant, config_hash=recorded)
    assert cell.variant == rec["variant"]
    assert RowStates(_spec(tmp_path, 0.0005)).current_config_hash(rec) == recorded


def test_paper_precision_is_accels():
    from reid_bench.engine import accel
    from reid_bench.table import rowstate

    assert rowstate.PAPER_PRECISION == accel.PAPER_PRECISION
