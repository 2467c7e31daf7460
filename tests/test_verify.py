"""``reid-bench verify`` (issue 27 item 6): a forged or tampered results folder is caught by
cross-checking each row against its cell JSON, its stored model's records and files, the spec,
and (``--reevaluate``) the stored model's numbers; the report flags a row that disagrees with
its records. Each forgery is one generated case; the table says which check must catch it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from toyspec import register_plugin, tiny_spec

from reid_bench.cli import main
from reid_bench.core.hashing import stable_hash
from reid_bench.engine.artifacts import write_manifest
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.run.verify import row_consistency, verify_folder
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.store.row_digest import row_digest
from reid_bench.table.plan import config_hash, plan

register_plugin()

PUBLISHED = {"rank1": 50.0, "mAP": 30.0}  # toyspec's published numbers


@pytest.fixture(scope="module")
def clean(tmp_path_factory, shared_data_root) -> tuple[Path, Path]:
    """(spec file, results folder) of a finished 2-row smoke table (two trainings)."""
    root = tmp_path_factory.mktemp("verify")
    spec_path = tiny_spec(root, [{"name": "a"}, {"name": "b", "params": {"sleep": 0.0001}}],
                          epochs=1)
    spec = load_spec(spec_path)
    out = root / "r"
    Runner(spec, RunOptions(results_dir=out, data_root=shared_data_root, smoke=True,
                            quiet=True)).run(plan(spec, smoke=True))
    return spec_path, out


def _csv(res: Path) -> Path:
    return results.table_csv(res, "demo", "table1")


def _rewrite(res: Path, row: str, **changes) -> None:
    """Change fields of ``row`` in the CSV and recompute its digest (what a forger does)."""
    csv = _csv(res)
    df = results.read_results(csv)
    i = df.index[df["row"] == row][0]
    for k, v in changes.items():
        df.loc[i, k] = v
    df.loc[i, "row_digest"] = row_digest({c: df.loc[i, c] for c in results.COLUMNS})
    df[results.COLUMNS].to_csv(csv, index=False)


def _json_path(res: Path, row: str, tier: str = "smoke") -> Path:
    return results.cell_dir(res, "demo", "table1") / f"{results.cell_id(row, 'market', 0, tier)}.json"


def _artefact(res: Path, row: str) -> Path:
    named = Path(json.loads(_json_path(res, row).read_text())["trained_artifact"])
    return res / "_artifacts" / named.parent.name / named.name


def smoke_as_full(res, spec_path):
    """The issue's forgery: a smoke row made full with the paper's numbers, the config hash
    the spec gives the full cell (so it is not stale either) and its digest recomputed."""
    spec = load_spec(spec_path)
    full = next(c for c in plan(spec, rows=["a"]) if c.tier == "full")
    _rewrite(res, "a", tier="full", smoke=False, synthetic=False,
             cell_id=results.cell_id("a", "market", 0, "full"),
             config_hash=config_hash(spec, full), **PUBLISHED)


def smoke_as_full_with_its_json(res, spec_path):
    """The same, with a cell JSON forged to match (tier, metrics, config hash recomputed)."""
    smoke_as_full(res, spec_path)
    d = json.loads(_json_path(res, "a").read_text())
    d["config"]["tier"], d["config"]["smoke"] = "full", False
    d["metrics"].update(PUBLISHED)
    chash = stable_hash(d["config"])
    _rewrite(res, "a", config_hash=chash)
    row = results.read_results(_csv(res)).set_index("row").loc["a"].to_dict()
    d["row"] = {k: (None if v != v else v) for k, v in ({"row": "a"} | row).items()
                if k != "row_digest"}
    _json_path(res, "a", "full").write_text(json.dumps(d, default=str))


def metric_edited(res, spec_path=None):
    _rewrite(res, "a", mAP=99.0)


def train_hash_edited(res, spec_path=None):
    _rewrite(res, "a", train_hash="0" * 16)


def model_noise(res, spec_path=None):
    m = _artefact(res, "b") / "model.pt"
    s = torch.load(m, weights_only=True)
    torch.save({k: v + 0.5 * torch.randn_like(v) if v.is_floating_point() else v
                for k, v in s.items()}, m)


def training_record_edited(res, spec_path=None):
    p = _artefact(res, "b") / "training.json"
    p.write_text(p.read_text().replace('"hostname"', '"hostname_was"'))


def model_swapped_with_manifests_redone(res, spec_path=None):
    """Noise in the model, then its manifest and the cell's record of it rewritten to match:
    only evaluating the model again can tell."""
    model_noise(res, spec_path)
    folder = _artefact(res, "b")
    files = write_manifest(folder)
    p = _json_path(res, "b")
    d = json.loads(p.read_text())
    d["trained_files"] = files
    p.write_text(json.dumps(d, indent=1, default=str))


# forgery → (text the plain verify must report, or None when only --reevaluate can)
FORGERIES = {
    smoke_as_full: "no cell JSON",
    smoke_as_full_with_its_json: "config_hash is not the one",
    metric_edited: "metrics disagree with its cell JSON",
    train_hash_edited: "disagrees with its cell JSON on train_hash",
    model_noise: "model.pt changed since it was written",
    training_record_edited: "training.json changed since it was written",
    model_swapped_with_manifests_redone: None,
}


def _copy(clean, tmp_path) -> tuple[Path, Path]:
    spec_path, res = clean
    dst = tmp_path / "r"
    shutil.copytree(res, dst)
    return spec_path, dst


def test_a_clean_folder_verifies(clean, tmp_path):
    spec_path, res = _copy(clean, tmp_path)
    checks = verify_folder(res, spec_paths=[str(spec_path)])
    assert len(checks) == 2 and all(c.problem is None for c in checks), checks


@pytest.mark.parametrize("forge", list(FORGERIES), ids=lambda f: f.__name__)
def test_each_forgery_is_caught(clean, tmp_path, forge):
    spec_path, res = _copy(clean, tmp_path)
    forge(res, spec_path)
    checks = verify_folder(res, spec_paths=[str(spec_path)])
    problems = [c.problem for c in checks if c.problem]
    want = FORGERIES[forge]
    if want is None:  # the limit of digests and manifests: they can be recomputed
        assert problems == []
        return
    assert len(problems) == 1 and want in problems[0], problems


def test_reevaluate_catches_what_records_cannot_and_passes_a_clean_folder(clean, tmp_path,
                                                                          shared_data_root):
    spec_path, res = _copy(clean, tmp_path)
    ok = verify_folder(res, reevaluate=True, spec_paths=[str(spec_path)],
                       data_root=shared_data_root)
    assert all(c.problem is None and c.reevaluated for c in ok), [c.problem for c in ok]
    model_swapped_with_manifests_redone(res, spec_path)
    checks = verify_folder(res, reevaluate=True, spec_paths=[str(spec_path)],
                           data_root=shared_data_root)
    bad = {c.row["row"]: c.problem for c in checks if c.problem}
    assert list(bad) == ["b"] and "does not give the row's numbers" in bad["b"], bad
    assert not list(res.rglob(".work-*"))  # nothing left in the results folder


def test_cli_verify_prints_each_row_and_exits_nonzero(clean, tmp_path):
    spec_path, res = _copy(clean, tmp_path)
    smoke_as_full(res, spec_path)
    model_noise(res, spec_path)
    out = CliRunner().invoke(main, ["verify", str(res), "--specs", str(spec_path)])
    assert out.exit_code == 1, out.output
    assert out.output.count("FAIL ") == 2 and "0 of 2 row(s) verified; 2 FAILED" in out.output


def test_report_check_flags_contradictions_only(clean, tmp_path):
    """What the report calls (no hashing of models, no spec): a forged row is flagged, a row
    the runner never recorded (hand-made fixtures) is not, a tampered model is left to
    `verify`."""
    spec_path, res = _copy(clean, tmp_path)
    smoke_as_full(res, spec_path)
    rows = results.read_results(_csv(res)).set_index("row")
    assert "no cell JSON" in row_consistency(rows.loc["a"].to_dict() | {"row": "a"}, res)
    assert row_consistency(rows.loc["b"].to_dict() | {"row": "b"}, res) is None
    lone = tmp_path / "fixture"
    results.upsert_row(_csv(lone), {**rows.loc["b"].to_dict(), "row": "b"})
    assert row_consistency(results.read_results(_csv(lone)).iloc[0].to_dict(), lone) is None


def test_report_flags_the_forged_row_never_reproduced(clean, tmp_path):
    """The issue's case: the forged row read "✓ reproduced"; now it is flagged edited."""
    from reid_bench.report.flags import annotate

    spec_path, res = _copy(clean, tmp_path)
    smoke_as_full(res, spec_path)
    df = annotate(load_spec(spec_path), res, results.read_results(_csv(res))).set_index("row")
    assert df.loc["a", "flag"] == "edited" and "no cell JSON" in df.loc["a", "flag_reason"]
    assert df.loc["b", "flag"] == ""
