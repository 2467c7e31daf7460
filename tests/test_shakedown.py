"""The --shakedown tier: recipe deviations, the step limit in train_stage, the CLI guards, and
(slow) a CPU shakedown of one row per method at full input size and width."""

import math
import time

import pytest
import torch
from click.testing import CliRunner
from project_specs import project_spec
from torch import nn
from torch.utils.data import TensorDataset

from reid_bench.cli import main
from reid_bench.core.errors import DivergedError, ReidBenchError
from reid_bench.data.samplers import make_loader
from reid_bench.engine.recipe import OptimRecipe
from reid_bench.engine.train import train_stage
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec, resolved_recipe
from reid_bench.store import results
from reid_bench.table import shakedown
from reid_bench.table.plan import plan


def _values(spec_path, row):
    spec = load_spec(spec_path)
    r = next(r for r in spec.rows if r.name == row)
    return r.method, resolved_recipe(spec, r, smoke=False)[0]


def test_recipe_deviations_keep_the_full_recipe_otherwise(repo_root):
    method, values = _values(repo_root / "papers/deep_person/table1.yaml", "Deep-Person (Ours)")
    assert values["train"]["batch_size"] == 128 and values["sampler"]["k"] == 8
    same = shakedown.adjust_recipe(method, values, shakedown.ShakedownOptions())
    assert same == values  # no deviation asked: the paper's recipe as is
    out = shakedown.adjust_recipe(method, values,
                                  shakedown.ShakedownOptions(pretrained="none", max_batch=4))
    # P×K keeps two identities (batch-hard needs negatives): K 8 → 2, batch 4 = 2 × 2.
    assert out["train"]["batch_size"] == 4 and out["sampler"]["k"] == 2
    assert out["backbone"]["pretrained"] == "none"
    assert out["input"] == values["input"] and out["backbone"]["width"] == 1.0
    assert out["train"]["epochs"] == values["train"]["epochs"]
    # Every stage of a two-stage recipe is capped.
    method, values = _values(repo_root / "papers/ledf/table1.yaml", "LEDF")
    out = shakedown.adjust_recipe(method, values, shakedown.ShakedownOptions(max_batch=4))
    assert (out["verification"]["batch_size"], out["identification"]["batch_size"]) == (4, 4)
    assert out["backbone"]["pretrained"] == values["backbone"]["pretrained"]
    # The stand-in is generated at the recipe's input resolution (resize when set).
    opts = shakedown.dataset_options(*_values(repo_root / "papers/verif_identif/table2.yaml",
                                      "ResNet-50 (I)"))
    assert (opts["height"], opts["width"]) == (256, 256)
    opts = shakedown.dataset_options(method, values)
    assert (opts["height"], opts["width"]) == (256, 128)
    assert opts["num_train_ids"] * shakedown.NUM_CAMS >= 2 * 48  # room for the largest batch


def test_max_batch_refused_on_cuda_and_flags_need_shakedown(repo_root):
    with pytest.raises(ReidBenchError, match="CPU shakedowns only"):
        shakedown.check_device(shakedown.ShakedownOptions(max_batch=4), "cuda:0")
    shakedown.check_device(shakedown.ShakedownOptions(max_batch=4), "cpu")
    shakedown.check_device(shakedown.ShakedownOptions(), "cuda")
    spec = str(repo_root / "papers/lgeu/table1.yaml")
    res = CliRunner().invoke(main, ["run", spec, "--max-batch", "4", "--dry-run"])
    assert res.exit_code == 2 and "--shakedown" in res.output
    res = CliRunner().invoke(main, ["run", spec, "--shakedown", "--max-batch", "4",
                                    "--device", "cuda", "--dry-run"])
    assert res.exit_code == 2 and "CPU shakedowns only" in res.output
    res = CliRunner().invoke(main, ["run", spec, "--shakedown", "--dry-run"])
    assert res.exit_code == 0 and "SHAKEDOWN" in res.output


def _tiny(loss_scale=1.0):
    torch.manual_seed(0)
    ds = TensorDataset(torch.randn(40, 5), torch.arange(40) % 3)
    model = nn.Linear(5, 3)
    loader = make_loader(ds, 4, shuffle=True, seed=0, drop_last=True)

    def step(batch):
        x, y = batch
        return loss_scale * nn.functional.cross_entropy(model(x), y), {}

    return model, loader, step


def test_train_stage_stops_after_the_shakedown_steps_and_records_them():
    model, loader, step = _tiny()
    optim = OptimRecipe(lr=0.1, epochs=50)
    with shakedown.collect(shakedown.ShakedownOptions(steps=3)) as stages:
        hist = train_stage(model, loader, step, optim, stage="a")
        train_stage(model, loader, step, optim, stage="b")
    assert len(hist) == 1  # one (partial) epoch of the 50
    assert [(s["stage"], s["steps"], len(s["losses"])) for s in stages] == [("a", 3, 3),
                                                                            ("b", 3, 3)]
    summ = shakedown.summary(stages, torch.device("cpu"))
    assert summ["first_loss"] == stages[0]["losses"][0]
    assert summ["last_loss"] == stages[1]["losses"][-1]
    assert summ["step_s"] > 0 and summ["peak_mem_kind"] == "cpu_max_rss_process"
    # Outside a shakedown the stage runs all its epochs.
    assert len(train_stage(model, loader, step, OptimRecipe(lr=0.1, epochs=2))) == 2


def test_non_finite_loss_is_diverged_and_keeps_its_record():
    model, loader, step = _tiny(loss_scale=float("nan"))
    options = shakedown.ShakedownOptions(steps=2)
    with shakedown.collect(options) as stages, pytest.raises(DivergedError):
        train_stage(model, loader, step, OptimRecipe(lr=0.1, epochs=1))
    assert math.isnan(stages[0]["losses"][0])


# One row per method, as CI runs it: full input size and width, random init, batch <= 4,
# one step per stage.
ROWS = [("verif_identif/table2.yaml", "ResNet-50 (I)", "ide"),
        ("verif_identif/table2.yaml", "ResNet-50 (I+V)", "verif_identif"),
        ("fmn/table1.yaml", "FMN", "fmn"),
        ("deep_person/table1.yaml", "Deep-Person (Ours)", "deep_person"),
        ("ledf/table1.yaml", "LEDF", "ledf"),
        ("lgeu/table1.yaml", "Ours", "lgeu")]


@pytest.mark.slow
def test_cpu_shakedown_one_row_per_method(repo_root, shared_data_root, tmp_path):
    from reid_bench.table.rowstate import RowStates

    opts = shakedown.ShakedownOptions(steps=1, pretrained="none", max_batch=4)
    seconds = {}
    t_all = time.perf_counter()
    for spec_file, row, method in ROWS:
        spec = load_spec(repo_root / "papers" / spec_file)
        cells = plan(spec, rows=[row], tier="shakedown")[:1]  # the first column's cell
        runner = Runner(spec, RunOptions(results_dir=tmp_path, data_root=shared_data_root,
                                         shakedown=opts))
        t0 = time.perf_counter()
        summary = runner.run(cells)
        seconds[method] = round(time.perf_counter() - t0, 1)
        assert summary.ok and len(summary.done) == 1, (method, summary.failed)
        df = results.read_results(runner.csv)
        r = df[df["row"] == row].iloc[0]
        assert r["tier"] == "shakedown" and r["status"] == "ok" and r["method"] == method
        assert r["pretrained"] == "none" and r["max_batch"] == 4 and r["shakedown_steps"] == 1
        assert r["precision"] == "fp32" and r["synthetic"]
        # The report and status re-plan this row to the hash the run recorded: not stale.
        assert RowStates(spec).current_config_hash(r.to_dict()) == r["config_hash"]
        assert math.isfinite(r["first_loss"]) and math.isfinite(r["last_loss"])
        assert r["step_s"] > 0 and r["peak_mem_mb"] > 0
        cfg = runner.cell_config(cells[0])
        # The full recipe: paper input size and full-width networks.
        assert cfg["recipe"]["backbone"]["width"] == 1.0
        assert cfg["dataset"]["options"]["height"] >= 224
    print(f"\nCPU shakedown seconds per method: {seconds}; "
          f"total {time.perf_counter() - t_all:.0f}s")
    assert time.perf_counter() - t_all < 600


def test_report_labels_shakedown_and_non_paper_precision(tmp_path):
    """A shakedown table carries its own banner (never the smoke one, never a plain
    reproduction); full results take precedence over shakedown ones of the same cells; a row
    trained in another precision than the papers' fp32 is flagged."""
    from test_report import TOY_RESULTS, _row, write_toy

    from reid_bench.report.build import build_report, table_view
    from reid_bench.store.results import cell_id, table_csv, upsert_row

    spec, res = write_toy(tmp_path)  # full-tier rows
    csv = table_csv(res, "toy", "table1")
    page = tmp_path / "site" / "toy-table1.html"
    for name, seed in TOY_RESULTS:
        row = _row(spec, name, "market", seed, metrics={"rank1": 1.0, "mAP": 1.0},
                   synthetic=True)
        upsert_row(csv, row | {"smoke": False, "tier": "shakedown",
                               "cell_id": cell_id(name, "market", seed, "shakedown")})
    v = table_view(spec, res, with_plots=False)
    assert v.tier == "full"  # the shakedown's 1.0s are not mixed into the real numbers
    k1 = next(r for r in v.rows if r.name == "K=1").numbers[("market", "rank1")]
    assert k1.mean == pytest.approx(71.0) and k1.n == 2
    # Only shakedown results: the page says so, verdicts are not comparable.
    df = results.read_results(csv)
    df = df[df["tier"] == "shakedown"]
    csv.unlink()
    for rec in df.to_dict("records"):
        upsert_row(csv, {k: (None if isinstance(v, float) and v != v else v)
                         for k, v in rec.items()} | {"precision": "bf16"
                                                     if rec["row"] == "K=2" else "fp32"})
    v = table_view(spec, res, with_plots=False)
    # Never the headline (issue 28): it reads "not run", the shakedown block follows.
    assert v.tier == "full" and v.headline_empty and not v.synthetic
    assert all(n.mean is None for r in v.rows for n in r.numbers.values())
    (shake,) = v.others
    assert shake.tier == "shakedown"
    assert all(n.verdict.key == "synthetic" and "shakedown" in n.flags
               for r in shake.rows if r.name.startswith("K=") for n in r.numbers.values())
    k2 = next(r for r in shake.rows if r.name == "K=2").numbers[("market", "rank1")]
    assert k2.flags == ["shakedown", "precision bf16"]
    build_report(res, tmp_path / "site", [spec.path])
    html = page.read_text()
    assert 'id="notrun-banner"' in html and "SYNTHETIC SMOKE" not in html
    assert 'data-flag="precision bf16"' in html and 'data-flag="shakedown"' in html
    assert "SHAKEDOWN" in (tmp_path / "site" / "index.html").read_text()
    md = build_report(res, tmp_path / "site", [spec.path], fmt="markdown").read_text()
    assert "**NOT RUN**" in md and "[shakedown, precision bf16]" in md


def test_status_of_a_shakedown_tier_counts_its_own_cells(tmp_path):
    """`status --tier shakedown` plans the shakedown cells and reads their rows; their config
    depends on the run's flags, so an ok row is done, never stale. The same recorded hash on a
    full-tier row (where status can recompute the config) is stale."""
    from reid_bench.store import results
    from reid_bench.table.status import table_status

    spec = project_spec("lgeu/table1.yaml")
    csv = results.table_csv(tmp_path, spec.paper.id, spec.table.id)
    for tier in ("shakedown", "full"):
        results.upsert_row(csv, {"paper": "lgeu", "table": "table1", "row": "Ours",
                           "dataset": "market", "seed": 0, "tier": tier, "status": "ok",
                           "config_hash": "recorded-by-another-run",
                           # the runner records the data's fingerprint with every row
                           "dataset_fingerprint": "recorded-fingerprint",
                           "cell_id": results.cell_id("Ours", "market", 0, tier)})
    shake = {(s.row, s.dataset): s.state for s in table_status(spec, tmp_path, tier="shakedown")}
    full = {(s.row, s.dataset): s.state for s in table_status(spec, tmp_path)}
    assert shake[("Ours", "market")] == "done" and shake[("Ours", "cuhk03")] == "pending"
    assert full[("Ours", "market")] == "stale"
    assert len(shake) == len(full) == 9
