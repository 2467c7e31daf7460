"""Results a researcher can trust (issue 17): checkpoints resume only the same training, a
hand-edited or stale row is flagged and never reproduced, spec copies and --set overrides get
their own cells, smoke rows stay visible beside real ones, and an output error never touches
results."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from crashing import linear_toy_stage
from toyspec import IDE_A, toy_spec, write_spec

from reid_bench.cli import main
from reid_bench.report.build import build_report, table_view
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.plan import plan
from reid_bench.table.status import table_status

# The integrity cases (recipe-changed resume, hand-edited row, stale recipe, spec copy,
# smoke beside real, broken pipe) use only the API that existed before issue 17, so each can be
# run against that code to show it fails there; new modules are imported inside the tests.

# A tiny IDE table whose smoke run trains in seconds on the CPU.
ROWS = "rows:\n" + IDE_A


def _smoke(epochs: int, lr: float) -> str:
    return f"""\
smoke:
  dataset_options: {{num_train_ids: 8, num_test_ids: 8, num_cams: 3, images_per_cam: 2,
                    queries_per_id: 1, num_distractors: 4, num_junk: 2}}
  recipe:
    input: {{height: 32, width: 16}}
    backbone: {{pretrained: none, width: 0.25}}
    train: {{epochs: {epochs}, lr: {lr}, batch_size: 16}}
"""


def _spec_file(root: Path, epochs: int = 2, name: str = "papers/demo/table1.yaml",
               lr: float = 0.05) -> Path:
    return write_spec(root, toy_spec(ROWS, smoke=_smoke(epochs, lr), caption="tiny IDE table"),
                      name)


class Interrupt(Exception):
    pass


def _runner(spec_path: Path, results_dir: Path, data: Path, **kw) -> Runner:
    return Runner(load_spec(spec_path), RunOptions(results_dir=results_dir, data_root=data,
                                                   smoke=True, **kw))


class _Tap(logging.Handler):
    """Every library log message into ``messages``; ``raise_on``: raise ``Interrupt`` from the
    log call whose message starts with it (stops training there, like a kill; a handler's
    ``emit`` error reaches the caller)."""

    def __init__(self, raise_on: str | None = None):
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self.raise_on = raise_on

    def emit(self, record):
        msg = record.getMessage()
        self.messages.append(msg)
        if self.raise_on is not None and msg.startswith(self.raise_on):
            raise Interrupt(msg)


@contextlib.contextmanager
def _logs(raise_on: str | None = None):
    lib = logging.getLogger("reid_bench")
    tap, level = _Tap(raise_on), lib.level
    lib.addHandler(tap)
    lib.setLevel(logging.INFO)
    try:
        yield tap.messages
    finally:
        lib.removeHandler(tap)
        lib.setLevel(level)


# --------------------------------------------------------------------------------------------
# Checkpoints


def test_train_stage_resumes_only_the_same_identity(tmp_path):
    from reid_bench.engine.checkpoint_identity import checkpoint_identity, use_checkpoint_identity

    ckpt = tmp_path / ".work-x" / "stage.ckpt"
    same = checkpoint_identity("trainhash", "code1")
    with use_checkpoint_identity(same), pytest.raises(Interrupt), _logs("[train] epoch 2/"):
        linear_toy_stage(ckpt, 3)
    assert ckpt.is_file()
    # Same training: resumes after the checkpointed epoch.
    with use_checkpoint_identity(same), pytest.raises(Interrupt), \
            _logs("[train] epoch 3/") as logs:
        linear_toy_stage(ckpt, 3)
    assert any("resumed from stage.ckpt at epoch" in m for m in logs), logs
    # Another code fingerprint: set aside (kept), trained from scratch.
    with use_checkpoint_identity(checkpoint_identity("trainhash", "code2")), _logs() as logs:
        hist = linear_toy_stage(ckpt, 3)
    assert not any("resumed" in m for m in logs), logs
    assert any("not resuming stage.ckpt" in m and "code fingerprint" in m for m in logs), logs
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    kept = sorted(k.name for k in (tmp_path / ".work-x.set-aside").iterdir())
    assert len(kept) == 2 and kept[0].startswith("stage.ckpt.2")  # with its identity file
    assert kept[1].startswith("stage.ckpt.json.")


def test_recipe_changed_checkpoint_is_set_aside_not_resumed(tmp_path):
    """The issue's case: a cell interrupted mid-training, then its spec's recipe changed in
    place (e.g. a lower lr after a divergence): the old checkpoint must not be resumed."""
    spec = _spec_file(tmp_path, epochs=3)
    res, data = tmp_path / "res", tmp_path / "data"
    r = _runner(spec, res, data, checkpoint_every=1)
    with _logs("[ide] epoch 2/3"):
        assert not r.run(plan(r.spec, smoke=True)).ok  # the cell fails; its work folder stays
    work = next(res.glob("demo/table1/.work-*"))
    assert list(work.glob("*.ckpt")), "expected a mid-training checkpoint"
    _spec_file(tmp_path, epochs=3, lr=0.02)  # the recipe changes in place
    r = _runner(spec, res, data, checkpoint_every=1)
    with _logs() as logs:
        summary = r.run(plan(r.spec, smoke=True))
    assert summary.ok, summary.failed
    assert not any("resumed" in m for m in logs), logs
    assert any("not resuming" in m and "train hash" in m for m in logs), logs
    assert sum("epoch" in m and "/3" in m for m in logs) == 3  # all epochs of the new recipe
    kept = list(work.parent.glob(".work-*.set-aside/*.ckpt.*"))
    assert kept, "the old checkpoint is set aside, not deleted"


# --------------------------------------------------------------------------------------------
# Hand-edited and stale rows


def _edit_csv(csv: Path, where: dict, changes: dict) -> None:
    """Edit matching lines of a results CSV as text, like a person in an editor would."""
    import csv as csvmod

    with open(csv, newline="") as f:
        rows = list(csvmod.DictReader(f))
    hit = 0
    for r in rows:
        if all(r[k] in (v, v + ".0") for k, v in where.items()):
            r.update(changes)
            hit += 1
    assert hit, where
    with open(csv, "w", newline="") as f:
        w = csvmod.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_row_digest_survives_rewrites_and_catches_edits(tmp_path):
    from reid_bench.store.row_digest import row_digest, row_edited

    p = tmp_path / "t.csv"
    base = {"paper": "p", "table": "table1", "row": "r", "dataset": "c", "seed": 0,
            "status": "ok", "config_hash": "h", "rank1": 71.25, "mAP": None, "git_dirty": False}
    for split in (None, 0, 1):
        results.upsert_row(p, base | {"split": split, "num_queries": 3368 if split else None})
    results.upsert_row(p, base | {"row": "r2", "status": "failed",
                                  "error": "x\nline 2, \"quoted\""})
    df = results.read_results(p)
    assert df["row_digest"].notna().all()
    assert [row_edited(r) for r in df.to_dict("records")] == [""] * 4
    _edit_csv(p, {"row": "r", "split": "1"}, {"rank1": "80.0"})
    flags = [bool(row_edited(r)) for r in results.read_results(p).to_dict("records")]
    assert flags == [False, False, True, False]
    assert row_digest({"a": 1.0, "b": None}) == row_digest({"a": "1", "c": float("nan")})


def test_hand_edited_smoke_row_is_edited_never_reproduced(tmp_path):
    """The issue's case: a smoke row edited to look real (rank1 → published value, smoke and
    synthetic → False)."""
    from test_report import write_toy

    spec, res = write_toy(tmp_path, synthetic=True)
    csv = results.table_csv(res, "toy", "table1")
    _edit_csv(csv, {"row": "K=3", "seed": "0"},
              {"rank1": "75.0", "smoke": "False", "synthetic": "False", "tier": "full"})
    v = table_view(spec, res, with_plots=False)
    n = {rv.name: rv for rv in v.rows}["K=3"].numbers[("market", "rank1")]
    assert n.mean == 75.0
    assert n.verdict.key == "edited" and n.verdict.would_be == "reproduced"
    assert "row digest" in n.reason
    md = (build_report(res, tmp_path / "md", [str(spec.path)], fmt="markdown")).read_text()
    line = next(x for x in md.splitlines() if x.startswith("| K=3 |"))  # the main table
    assert "✎ edited" in line and "✓ reproduced" not in line


def test_stale_recipe_is_flagged_in_report_like_status(tmp_path):
    from test_report import write_toy

    spec, res = write_toy(tmp_path)
    v = table_view(spec, res, with_plots=False)
    k1 = {rv.name: rv for rv in v.rows}["K=1"].numbers[("market", "rank1")]
    assert k1.verdict.key == "reproduced"
    path = Path(spec.path)
    path.write_text(path.read_text().replace("lr: {value: 0.1,", "lr: {value: 0.2,"))
    spec = load_spec(path)
    v = table_view(spec, res, with_plots=False)
    k1 = {rv.name: rv for rv in v.rows}["K=1"].numbers[("market", "rank1")]
    assert k1.verdict.key == "stale" and k1.verdict.label.startswith("stale (recipe changed)")
    assert v.flagged["stale"] == 5 and v.counts["reproduced"] == 0
    states = {(s.row, s.seed): s.state for s in table_status(spec, res)}
    assert states[("K=1", 0)] == "stale"  # the same computation as `reid-bench status`
    html = build_report(res, tmp_path / "html", [str(path)]).parent
    page = (html / v.page).read_text()
    assert 'id="flagged-banner"' in page and "stale (recipe changed)" in page


# --------------------------------------------------------------------------------------------
# Smoke beside real


def test_smoke_results_stay_visible_beside_real_ones(tmp_path):
    from test_report import _row, write_toy

    spec, res = write_toy(tmp_path, synthetic=True)
    csv = results.table_csv(res, "toy", "table1")
    results.upsert_row(csv, _row(spec, "Absent", "market", 0, status="not_run",
                           error="dataset market1501 not found under data/"))
    md = build_report(res, tmp_path / "md", [str(spec.path)], fmt="markdown").read_text()
    # K=2 smoke seeds 84.0 and 86.0: mean 85.00 ± std 1.41, still listed and labelled.
    assert "85.00 ± 1.41" in md
    line = next(x for x in md.splitlines() if "85.00 ± 1.41" in x)
    assert "synthetic" in line and "reproduced |" not in line
    v = table_view(spec, res, with_plots=False)
    assert v.tier == "full" and [o.tier for o in v.others] == ["smoke"]
    page = (build_report(res, tmp_path / "h", [str(spec.path)]).parent / v.page).read_text()
    assert 'data-tier="smoke"' in page and "85.00 ± 1.41" in page


# --------------------------------------------------------------------------------------------
# Spec copies and --set overrides: their own cells


def _cli_run(spec: Path, res: Path, data: Path, *extra: str):
    out = CliRunner().invoke(main, ["run", str(spec), "--smoke", "--results-dir", str(res),
                                    "--data-root", str(data), "--device", "cpu", *extra])
    assert out.exit_code == 0, out.output
    return out


def test_spec_copy_and_set_overrides_get_their_own_cells(tmp_path):
    canonical = _spec_file(tmp_path, epochs=1)
    copy = _spec_file(tmp_path, epochs=1, name="my_copies/demo/table1.yaml", lr=0.02)
    res, data = tmp_path / "res", tmp_path / "data"
    _cli_run(canonical, res, data)
    csv = results.table_csv(res, "demo", "table1")
    before = results.read_results(csv).iloc[0].to_dict()
    out = _cli_run(copy, res, data)
    df = results.read_results(csv)
    assert len(df) == 2, "the copy's result must not replace the canonical cell"
    assert df[df["variant"] == ""].iloc[0]["config_hash"] == before["config_hash"]
    assert "kept apart" in out.output
    _cli_run(canonical, res, data, "--set", "train.lr=0.02", "--set", "train.epochs=1")
    df = results.read_results(csv).set_index("variant")
    copy_spec = load_spec(copy)
    assert sorted(df.index) == sorted(["", f"spec:{copy_spec.spec_hash}",
                                       "set:train.epochs=1;set:train.lr=0.02"])
    # The canonical cell is untouched by either run.
    after = df.loc[""].to_dict()
    assert after["row_digest"] == before["row_digest"]
    assert after["config_hash"] == before["config_hash"]
    assert len(set(df["config_hash"])) == 3 and len(set(df["cell_id"])) == 3
    over = df.loc["set:train.epochs=1;set:train.lr=0.02"]
    assert json.loads(over["overrides"]) == {"train.epochs": 1, "train.lr": 0.02}
    cells = json.loads(next(res.glob(f"demo/table1/{over['cell_id']}.json")).read_text())
    assert cells["config"]["recipe"]["train"]["lr"] == 0.02

    # Canonical report: its own numbers in the table; the copy and the override beside it,
    # labelled, and the copy's recipe is not passed off as the canonical one.
    spec = load_spec(canonical)
    v = table_view(spec, res, with_plots=False)
    # Smoke runs only: the headline reads "not run"; every run is a labelled block beside it.
    assert v.variant == "" and v.rows[0].numbers[("market", "rank1")].n == 0
    own = next(o for o in v.others if (o.tier, o.variant) == ("smoke", ""))
    assert own.rows[0].numbers[("market", "rank1")].n == 1
    labels = {o.variant: " ".join(o.labels) for o in v.others}
    assert "deviates from the paper's recipe: train.epochs=1 (spec: 1), train.lr=0.02 " \
        "(spec: 0.05)" in labels["set:train.epochs=1;set:train.lr=0.02"]
    assert "another spec file" in labels[f"spec:{copy_spec.spec_hash}"]
    for o in v.others:
        if o.variant:
            assert o.rows[0].numbers[("market", "rank1")].verdict.key == "variant"
    md = build_report(res, tmp_path / "md", [str(canonical)], fmt="markdown").read_text()
    assert "deviates from the paper's recipe: train.epochs=1 (spec: 1), train.lr=0.02" in md
    # The copy's own page: its results, its recipe, under a banner.
    vc = table_view(copy_spec, res, with_plots=False)
    assert vc.variant == f"spec:{copy_spec.spec_hash}" and vc.page != v.page
    mine = next(o for o in vc.others if o.variant == vc.variant)
    assert mine.rows[0].numbers[("market", "rank1")].verdict.key == "variant"
    page = (build_report(res, tmp_path / "h", [str(copy)]).parent / vc.page).read_text()
    assert 'id="variant-banner"' in page
    # status of the copy looks at the copy's cells.
    assert [s.state for s in table_status(copy_spec, res, smoke=True)] == ["done"]


def test_set_validation_names_the_key_and_allowed_values(tmp_path):
    from reid_bench.table.overrides import (
        OverrideError,
        compose_variant,
        parse_sets,
        validate_overrides,
    )

    spec = load_spec(_spec_file(tmp_path))
    rows = [r for r in spec.rows if r.runnable]
    with pytest.raises(OverrideError, match=r"--set recipe\.train\.lrr .*Did you mean 'lr'"):
        validate_overrides(spec, rows, parse_sets(["recipe.train.lrr=0.1"]), smoke=True)
    with pytest.raises(OverrideError, match=r"--set recipe\.train\.optimizer .*'sgd' or 'adam'"):
        validate_overrides(spec, rows, parse_sets(["recipe.train.optimizer=rmsprop"]))
    with pytest.raises(OverrideError, match=r"--set recipe\.train\.lr .*greater than 0.*IDE A"):
        validate_overrides(spec, rows, parse_sets(["recipe.train.lr=-1"]))
    with pytest.raises(OverrideError, match="evaluation settings"):
        parse_sets(["eval.distance=cosine"])
    with pytest.raises(OverrideError, match="KEY=VALUE"):
        parse_sets(["recipe.train.lr"])
    assert parse_sets(["recipe.train.lr_steps=[7, 9]", "recipe.input.flip=false"]) == \
        {"train.lr_steps": [7, 9], "input.flip": False}
    validate_overrides(spec, rows, parse_sets(["recipe.train.lr_steps=[7, 9]"]))  # valid: no error
    out = CliRunner().invoke(main, ["run", str(spec.path), "--smoke", "--dry-run",
                                    "--set", "recipe.train.epoch=3"])
    assert out.exit_code == 2 and "train.epoch" in out.output and "epochs" in out.output
    assert compose_variant(["variant:a=1", "set:b=2", "", "spec:x", "set:b=2"]) == \
        "set:b=2;spec:x;variant:a=1"


# --------------------------------------------------------------------------------------------
# Output errors never touch results


def test_broken_pipe_never_touches_results(tmp_path):
    """`reid-bench run … | head`: once the reader is gone every print raises BrokenPipeError;
    the cell must still be recorded ok (here over an ok row, recomputed with --force)."""
    spec = _spec_file(tmp_path, epochs=1)
    res, data = tmp_path / "res", tmp_path / "data"
    r = _runner(spec, res, data)
    assert r.run(plan(r.spec, smoke=True)).ok

    def closed_pipe(msg):
        if "epoch" in msg:  # the reader went away during training
            raise BrokenPipeError(32, "Broken pipe")

    from reid_bench.core.console import configure

    r = _runner(spec, res, data, force=True)
    restore = configure(closed_pipe)  # the CLI's console handler, on a console that fails
    try:
        summary = r.run(plan(r.spec, smoke=True))
    finally:
        restore()
    assert summary.ok, summary.failed
    row = results.read_results(r.csv).iloc[0]
    assert row["status"] == "ok" and not isinstance(row["error"], str)


# --------------------------------------------------------------------------------------------
# Exports


def test_json_report_has_per_cell_provenance(tmp_path):
    from test_report import write_toy

    spec, res = write_toy(tmp_path)
    out = build_report(res, tmp_path / "j", [str(spec.path)], fmt="json")
    table = json.loads(out.read_text())["tables"][0]
    cells = {(c["row"], c["seed"]): c for c in table["cells"]}
    assert len(table["cells"]) == 7  # every results row, ok or not
    c = cells[("K=2", 1)]
    for key in ("git_commit", "git_dirty", "config_hash", "spec_hash", "seed", "torch",
                "device_name", "started_at", "finished_at", "tier", "variant", "row_digest"):
        assert key in c, key
    assert c["git_commit"] == "test-fixture" and c["tier"] == "full" and c["variant"] == ""
    assert not c["flag"] and c["config_hash"] == results.read_results(
        results.table_csv(res, "toy", "table1")).set_index(["row", "seed"]).loc[("K=2", 1),
                                                                          "config_hash"]


def _write_results(res: Path, values: dict, device: str) -> None:
    csv = results.table_csv(res, "toy", "table1")
    for (row, seed), (r1, mp) in values.items():
        results.upsert_row(csv, {"paper": "toy", "table": "table1", "row": row, "dataset": "market",
                           "seed": seed, "status": "ok", "rank1": r1, "mAP": mp,
                           "config_hash": "h", "device_name": device, "git_commit": "abc123"})


def test_compare_two_results_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _write_results(a, {("K=1", 0): (70.0, 50.0), ("K=1", 1): (72.0, 52.0),
                       ("K=2", 0): (80.0, 60.0)}, "GPU A")
    _write_results(b, {("K=1", 0): (71.0, 50.5), ("K=1", 1): (75.0, 51.5),
                       ("K=3", 0): (60.0, 40.0)}, "GPU B")
    out = CliRunner().invoke(main, ["compare", str(a), str(b), "--format", "json"])
    assert out.exit_code == 0, out.output
    recs = {(r["row"], r["metric"]): r for r in json.loads(out.output)}
    k1 = recs[("K=1", "rank1")]
    assert k1["mean_a"] == 71.0 and k1["mean_b"] == 73.0 and k1["delta"] == 2.0
    assert k1["std_a"] == pytest.approx(2 ** 0.5) and k1["std_b"] == pytest.approx(8 ** 0.5)
    assert k1["n_a"] == 2 and k1["n_b"] == 2
    assert recs[("K=2", "rank1")]["n_b"] == 0 and recs[("K=2", "rank1")]["delta"] is None
    assert recs[("K=3", "mAP")]["mean_b"] == 40.0
    text = CliRunner().invoke(main, ["compare", str(a), str(b)]).output
    assert "GPU A" in text and "GPU B" in text
    line = next(x for x in text.splitlines() if "K=1 × market rank1" in x)
    assert "71.00 ± 1.41 (n=2)" in line and "73.00 ± 2.83 (n=2)" in line and "+2.00" in line
    # A hand-edited row is marked.
    _edit_csv(results.table_csv(b, "toy", "table1"), {"row": "K=3"}, {"rank1": "90.0"})
    text = CliRunner().invoke(main, ["compare", str(a), str(b)]).output
    assert "edited" in next(x for x in text.splitlines() if "K=3 × market rank1" in x)
