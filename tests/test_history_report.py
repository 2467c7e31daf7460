"""The report's training curves (report/curves.py): one SVG per trained model with seeds
overlaid, a "curves" link from each row, tier labels on every figure, the monitoring note, the
plateau flag, the JSON report's histories; cell JSONs are untrusted input. And the schedule
warnings (spec/schedule.py): an lr step at or beyond the epochs."""

from __future__ import annotations

import itertools
import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from toyspec import (
    MARKET_PLAIN,
    recipe,
    register_plugin,
    tiny_rows,
    tiny_spec,
    toy_spec,
    write_spec,
)

from reid_bench.cli import main
from reid_bench.history import plateaued
from reid_bench.report import curves
from reid_bench.report.build import build_report
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.spec.schedule import schedule_warnings
from reid_bench.table.plan import plan

register_plugin()


@pytest.fixture(scope="module")
def run_two_seeds(tmp_path_factory, shared_data_root):
    root = tmp_path_factory.mktemp("curves")
    spec_path = tiny_spec(root, [{"name": "a"}, {"name": "b"}], epochs=3)
    spec = load_spec(spec_path)
    runner = Runner(spec, RunOptions(results_dir=root / "r", data_root=shared_data_root,
                                     smoke=True, eval_every=2, quiet=True))
    assert runner.run(plan(spec, smoke=True, seeds=2)).ok
    return root, spec_path


def _page(root: Path, spec_path: Path) -> str:
    build_report(root / "r", root / "html", [str(spec_path)])
    return next((root / "html").glob("demo-table1*.html")).read_text()


@pytest.mark.slow
def test_each_row_links_to_its_curves_svg_with_seeds_overlaid(run_two_seeds):
    root, spec_path = run_two_seeds
    page = _page(root, spec_path)
    for row in ("a", "b"):
        # Smoke results are a labelled block, never the headline (issue 28): their curves are
        # that block's, anchored and linked from the block's row.
        anchor = f"curves-{row}-market-smoke"
        assert f'href="#{anchor}"' in page
        fig = re.search(rf'<figure class="plot curves" id="{anchor}".*?</figure>', page, re.S)
        assert fig and "<svg" in fig.group(0)
        svg = fig.group(0)
        assert "seed 0" in svg and "seed 1" in svg  # both seeds in one figure
        assert "SYNTHETIC" in svg  # smoke curves carry their label
        assert "loss" in svg and "rank1 (monitoring" in svg and "group0" in svg
        assert "_artifacts/trained/" in svg  # pointer to the full metrics.csv
    assert "no model selection on the test set" in page


@pytest.mark.slow
def test_json_report_carries_histories_and_pointers(run_two_seeds):
    root, spec_path = run_two_seeds
    build_report(root / "r", root / "json", [str(spec_path)], fmt="json")
    table = json.loads((root / "json" / "summary.json").read_text())["tables"][0]
    cur = {c["row"]: c for c in table["training_curves"]}
    assert set(cur) == {"a", "b"}
    for c in cur.values():
        assert len(c["runs"]) == 2 and "final epoch" in c["monitoring"]
        for r in c["runs"]:
            assert (root / "r" / r["history_file"]).is_file()
            assert [x["epoch"] for x in r["rows"] if x["kind"] == "epoch"] == [1, 2, 3]
            assert [x["epoch"] for x in r["rows"] if x["kind"] == "monitor"] == [2]


BAD_HISTORIES = [
    "not a list", [1, 2], [{"stage": "s"}], [{"stage": "s", "kind": "other", "epoch": 1,
                                              "step": 1}],
    [{"stage": "s", "kind": "epoch", "epoch": 1, "step": 1, "bad key!": 1.0}],
    [{"stage": "s", "kind": "epoch", "epoch": 1.5, "step": 1}],
    [{"stage": "s", "kind": "epoch", "epoch": 1, "step": 1, "loss": "<script>"}],
    [{"stage": "x" * 500, "kind": "epoch", "epoch": 1, "step": 1}],
    [{"stage": "s", "kind": "epoch", "epoch": 1, "step": 1, "loss": [1]}],
]


@pytest.mark.parametrize("bad", BAD_HISTORIES, ids=range(len(BAD_HISTORIES)))
def test_damaged_cell_history_is_ignored_not_trusted(tmp_path, bad):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"history": bad, "history_file": "x"}))
    assert curves.load_history(p) == ([], None)


def test_oversized_cell_json_is_not_parsed(tmp_path, monkeypatch):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"history": [{"stage": "s", "kind": "epoch", "epoch": 1,
                                          "step": 1}]}))
    assert curves.load_history(p)[0]
    monkeypatch.setattr(curves, "MAX_CELL_JSON", 10)
    assert curves.load_history(p) == ([], None)


# Every combination of what marks a page: tier, synthetic data, deviation flags, variant.
MARKS = list(itertools.product(["full", "smoke", "shakedown", "smoke_recipe"], [False, True],
                               [(), ("subset",)], ["", "set:abc", "subset"]))


def _label(tier, synthetic, flags, variant) -> str:
    return curves.page_label(SimpleNamespace(tier=tier, synthetic=synthetic, flags=list(flags),
                                             variant=variant))


@pytest.mark.parametrize("tier,synthetic,flags,variant", MARKS)
def test_every_non_canonical_page_labels_its_curves(tier, synthetic, flags, variant):
    canonical = tier == "full" and not synthetic and not flags and variant in ("", "subset")
    assert bool(_label(tier, synthetic, flags, variant)) == (not canonical or bool(flags))


@pytest.mark.parametrize("label", sorted({_label(*m) for m in MARKS} - {""}))
def test_each_label_is_drawn_as_title_and_watermark(label):
    run = {"label": "seed 0", "rows": [{"stage": "s", "kind": "epoch", "epoch": 1, "step": 1,
                                        "loss": 1.0, "lr": 0.1}]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a one-epoch (shakedown) curve lays out cleanly
        svg = curves.draw(curves.Curve("r", ["c"], "x", [run]), label)
    assert label in svg and "not comparable" in svg
    assert svg.count(label.split()[0].upper()) >= 2  # title and watermark


def _epochs(losses: list[float], stage: str = "s") -> list[dict]:
    return [{"stage": stage, "kind": "epoch", "epoch": i + 1, "step": i + 1,
             "epochs": len(losses), "loss": x} for i, x in enumerate(losses)]


@pytest.mark.parametrize("epochs", range(1, 13))
@pytest.mark.parametrize("shape", ["down", "flat", "up", "late"])
def test_plateau_flag_when_loss_did_not_decrease_in_first_quarter(epochs, shape):
    q = -(-epochs // 4)
    losses = {"down": [5.0 - 0.1 * i for i in range(epochs)], "flat": [5.0] * epochs,
              "up": [5.0 + 0.1 * i for i in range(epochs)],
              # stuck through the first quarter, learning after it: still flagged
              "late": [5.0 if i < q else 1.0 for i in range(epochs)]}[shape]
    got = plateaued(_epochs(losses))
    assert bool(got) == (shape != "down" and q >= 2), got


def test_plateau_shows_in_report(tmp_path):
    cells = tmp_path / "cells"
    cells.mkdir()
    (cells / "a.json").write_text(json.dumps({"history": _epochs([5.0] * 8)}))
    view = SimpleNamespace(rows=[SimpleNamespace(name="r", cells=[
        {"cell_id": "a", "status": "ok", "dataset": "market", "seed": 0, "train_hash": "h"}])],
        tier="full", synthetic=False, flags=[], variant="")
    curves.add_curves(view, cells, with_svg=True)
    assert len(view.curves) == 1 and "did not decrease" in view.curves[0].warnings[0]


@pytest.mark.slow
def test_plateau_badge_beside_the_rows_curves_link(run_two_seeds, tmp_path):
    import shutil

    root, spec_path = run_two_seeds
    shutil.copytree(root / "r", tmp_path / "r")
    cell = next((tmp_path / "r" / "demo" / "table1").glob("a__*s0*.json"))
    data = json.loads(cell.read_text())
    cell.write_text(json.dumps(data | {"history": _epochs([5.0] * 8)}))
    page = _page(tmp_path, spec_path)
    # The smoke rows sit in their labelled block (issue 28); the badge follows the row's link.
    links = re.findall(r'<td class="name">(\w) <a class="curves-link" href="#[^"]+">curves</a>'
                       r'( <span[^>]*data-flag="plateau")?', page)
    assert {name: bool(badge) for name, badge in links} == {"a": True, "b": False}


# ------------------------------------------------------------------------ schedule warnings


@pytest.mark.parametrize("epochs,steps", [(e, s) for e in (1, 2, 4, 5)
                                          for s in ([], [0], [1], [3], [4], [5], [2, 4])])
def test_lr_step_at_or_beyond_epochs_is_warned(tmp_path, epochs, steps):
    rec = recipe(32, 16, "none", source="test", normalize="none", epochs=epochs, lr=0.1,
                 lr_steps=steps, batch_size=8)
    spec = load_spec(write_spec(tmp_path, toy_spec(tiny_rows([{"name": "a"}]), recipe=rec,
                                                   datasets=MARKET_PLAIN)))
    warns = schedule_warnings(spec, tiers=(False,))
    late = [s for s in steps if s >= epochs]
    assert bool(warns) == bool(late), warns
    if late:
        assert "recipe.train.lr_steps" in warns[0] and f"epochs={epochs}" in warns[0]


def test_set_epochs_below_an_lr_step_warns_at_plan_time(tmp_path):
    spec_path = tiny_spec(tmp_path, [{"name": "a"}], epochs=6)
    text = spec_path.read_text().replace("    lr: {value: 0.05", "    lr_steps: {value: [5], "
                                         "source: \"test\"}\n    lr: {value: 0.05")
    spec_path.write_text(text)
    args = ["run", str(spec_path), "--dry-run", "--results-dir", str(tmp_path / "r")]
    assert "warning" not in CliRunner().invoke(main, args).output
    out = CliRunner().invoke(main, [*args, "--set", "train.epochs=4"])
    assert out.exit_code == 0, out.output
    assert "warning:" in out.output and "lr_steps [5]" in out.output and "epochs=4" in out.output
    val = CliRunner().invoke(main, ["validate", str(spec_path)])
    assert val.exit_code == 0 and "warning" not in val.output
