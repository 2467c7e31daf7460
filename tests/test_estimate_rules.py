"""``run --dry-run`` estimates (issue 28 item 3): an explicit ``--throughput`` always wins; a
shakedown's rate stands in only when measured on the GPU kind the GPU-hours are for; a stage a
method caches and shares (FMN's stage-1 GRN, LEDF's verification network) is counted once;
cells and images are totalled without a throughput."""

import itertools
import math
import re

import pytest
from click.testing import CliRunner

from reid_bench.cli import main
from reid_bench.core.registry import METHODS
from reid_bench.run.runner import RunOptions
from reid_bench.spec import find_specs, load_spec
from reid_bench.store import results
from reid_bench.table.estimate import Estimator, optim_stages
from reid_bench.table.plan import cell_config, plan

LGEU = "papers/lgeu/table1.yaml"


def _shakedown_row(res, rate, device):
    results.upsert_row(results.table_csv(res, "lgeu", "table1"), {
        "paper": "lgeu", "table": "table1", "row": "Ours", "dataset": "market", "seed": 0,
        "tier": "shakedown", "status": "ok", "img_per_s": rate, "device": device,
        "device_name": {"cpu": "cpu (x86_64)", "cuda:0": "NVIDIA H100"}.get(device)})


@pytest.mark.parametrize("explicit, measured", list(itertools.product(
    [None, 500.0], [None, "cpu", "cuda:0"])))
def test_explicit_throughput_wins_and_only_a_gpu_shakedown_stands_in(
        tmp_path, repo_root, monkeypatch, explicit, measured):
    monkeypatch.chdir(repo_root)
    spec = load_spec(LGEU)
    if measured:
        _shakedown_row(tmp_path, 0.85 if measured == "cpu" else 1234.0, measured)
    cell = next(c for c in plan(spec) if (c.row.name, c.dataset) == ("Ours", "market"))
    est = Estimator(spec, RunOptions(results_dir=tmp_path), explicit, {}).cell(cell)
    if explicit:
        assert (est.throughput, est.throughput_source) == (explicit, "--throughput")
    elif measured == "cuda:0":
        assert (est.throughput, est.throughput_source) == (1234.0, "shakedown on NVIDIA H100")
    else:
        assert est.throughput is None and est.gpu_hours is None
    assert ("ran on cpu, not a GPU: not used" in est.throughput_note) is (
        measured == "cpu" and not explicit)


def _total(out: str) -> str:
    return re.search(r"total over \d+ table\(s\): (.*)", out).group(1)


def test_a_cpu_shakedown_leaves_the_suite_total_unchanged(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    args = ["run", "papers/lgeu/", "--dry-run", "--throughput", "5000", "--results-dir",
            str(tmp_path)]
    before = CliRunner().invoke(main, args, catch_exceptions=False).output
    _shakedown_row(tmp_path, 0.85, "cpu")
    after = CliRunner().invoke(main, args, catch_exceptions=False).output
    assert _total(before) == _total(after) and "GPU-h" in _total(after)
    # Without a throughput the cells and images are still totalled.
    bare = CliRunner().invoke(main, args[:3] + args[5:], catch_exceptions=False).output
    assert re.match(r"\d+ cell\(s\), \d+ training\(s\), [\d,]+ training images; no time "
                    r"estimate \(pass --throughput IMG_PER_S\)", _total(bare)), _total(bare)


def test_fmn_stage1_is_counted_once_per_table(repo_root, monkeypatch, tmp_path):
    """FMN Table 5's four mask layers share one stage-1 GRN: stage 1 once, stage 2 four times."""
    monkeypatch.chdir(repo_root)
    spec = load_spec("papers/fmn/table5.yaml")
    opts = RunOptions(results_dir=tmp_path)
    est = Estimator(spec, opts, 5000.0, {})
    ests = [est.cell(c) for c in plan(spec)]
    e1, e2 = (s.epochs for s in ests[0].stages)
    n = ests[0].stages[0].images_per_epoch
    assert [e.total_images for e in ests] == [n * (e1 + e2)] + [n * e2] * (len(ests) - 1)
    assert all(e.stages[0].shared_with == f"table5:{ests[0].cell.id}" for e in ests[1:])


def test_every_shared_stage_is_a_stage_of_its_recipe(repo_root, monkeypatch):
    """Method.shared_stages names real stages of every spec's rows (a renamed stage would
    silently count twice again)."""
    monkeypatch.chdir(repo_root)
    seen = set()
    for f in find_specs(None):
        spec = load_spec(f)
        for cell in plan(spec):
            method = METHODS.get(cell.row.method)()
            params = method.Params.model_validate(cell.row.params)
            recipe = method.Recipe.model_validate(cell_config(spec, cell)["recipe"])
            names = {n for n, _ in optim_stages(recipe)}
            shared = set(method.shared_stages(params, recipe))
            assert shared <= names, (f, cell.id, shared - names)
            seen |= {(cell.row.method, s) for s in shared}
    assert {("fmn", "stage1"), ("ledf", "verification")} <= seen


def test_hours_follow_images_over_throughput(repo_root, monkeypatch, tmp_path):
    monkeypatch.chdir(repo_root)
    spec = load_spec(LGEU)
    for c in plan(spec):
        e = Estimator(spec, RunOptions(results_dir=tmp_path), 5000.0, {}).cell(c)
        assert math.isclose(e.gpu_hours, e.total_images / 5000.0 / 3600)
