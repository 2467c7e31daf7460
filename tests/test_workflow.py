"""The real-data workflow of ``reid-bench run``: --subset, --smoke-recipe, --rows/--datasets
matching, several specs or a folder, --dry-run estimates, errors printed in full, and the
trained-model cache shared across tables."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from fixtures_data import market_name, write_jpg
from test_runner_e2e import SPEC

from reid_bench.cli import main
from reid_bench.data import load_dataset
from reid_bench.store import results


def market_subset(root: Path) -> Path:
    """A real-layout Market-1501 folder far smaller than the real one: 8 training ids × 3
    cameras × 2 images; 4 test ids queried from camera 1, found in cameras 2 and 3; one
    distractor and one junk image. Colours differ by id so identities are learnable."""
    base = root / "Market-1501-v15.09.15"
    frame = 0

    def put(folder, pid, cam, colour):
        nonlocal frame
        frame += 1
        write_jpg(base / folder / market_name(pid, cam, frame), colour=colour)

    for pid in range(2, 10):
        for cam in (1, 2, 3):
            for _ in range(2):
                put("bounding_box_train", pid, cam, (pid * 25, 255 - pid * 20, cam * 40))
    for pid in range(10, 14):
        colour = ((pid * 37) % 255, (pid * 91) % 255, (pid * 53) % 255)
        put("query", pid, 1, colour)
        put("bounding_box_test", pid, 2, colour)
        put("bounding_box_test", pid, 3, colour)
    put("bounding_box_test", 0, 4, (0, 0, 0))
    put("bounding_box_test", -1, 5, (9, 9, 9))
    return base


def write_spec(folder: Path, table: str = "table1") -> Path:
    p = folder / "papers" / "demo" / f"{table}.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(SPEC).replace("id: table1", f"id: {table}"))
    return p


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_subset_smoke_recipe_walkthrough_on_real_layout(tmp_path):
    data = tmp_path / "data"
    market = market_subset(data)
    spec = write_spec(tmp_path)
    res = tmp_path / "results"
    common = ["--data-root", data, "--results-dir", res, "--device", "cpu", "--quiet"]

    # Without --subset the subset is refused before training, with the whole reason (every
    # line, indented) and the way out.
    out = cli("run", spec, "--smoke-recipe", "--rows", "ide a", *common)
    assert out.exit_code == 1
    assert "expected 751" in out.output and "run with --subset" in out.output
    assert re.search(r"\n {6}- gallery: \d+ images, expected 19732\n", out.output)
    assert re.search(r"\n {6}Re-extract it from its original archive", out.output)

    out = cli("run", spec, "--subset", "--smoke-recipe", "--rows", "ide a", *common)
    assert out.exit_code == 0, out.output
    assert "SMOKE RECIPE on real data" in out.output and "SUBSET" in out.output
    df = results.read_results(results.table_csv(res, "demo", "table1"))
    row = df[(df["row"] == "IDE A") & (df["status"] == "ok")]
    assert len(row) == 1
    r = row.iloc[0]
    assert r["tier"] == "smoke_recipe" and r["variant"] == "subset" and bool(r["subset"])
    assert not r["smoke"] and not r["synthetic"] and r["dataset_name"] == "market1501"
    # It trained and evaluated on the real files: their fingerprint, their query count.
    real = load_dataset("market1501", data)
    assert r["dataset_fingerprint"] == real.fingerprint and int(r["num_queries"]) == 4
    cell_json = results.cell_dir(res, "demo", "table1") / f"{r['cell_id']}.json"
    cell = json.loads(cell_json.read_text())
    assert cell["config"]["recipe"]["train"]["epochs"] == 8  # the smoke recipe
    assert cell["config"]["dataset"]["name"] == "market1501"
    assert not (data / "synthetic").exists() and sorted(p.name for p in data.iterdir()) == [
        market.name]

    out = cli("report", "--results-dir", res, "--specs", spec, "--out", tmp_path / "rep")
    assert out.exit_code == 0, out.output
    html = (tmp_path / "rep" / "demo-table1.html").read_text()
    # Never the headline (it reads "not run"): a labelled block, every flag on its numbers.
    assert 'id="notrun-banner"' in html
    other = html[html.index('id="other-results"'):]
    assert 'data-flag="subset"' in other and 'data-flag="smoke recipe"' in other
    assert 'data-verdict="not comparable"' in other
    # The report re-plans the cell to the hash the runner recorded: not stale.
    assert 'data-verdict="stale"' not in html
    assert 'data-verdict="reproduced"' not in html and 'data-verdict="better"' not in html


def test_rows_and_datasets_match_loosely_and_suggest(tmp_path):
    spec = write_spec(tmp_path)
    out = cli("run", spec, "--smoke", "--dry-run", "--rows", "ide a, IDE B", "--datasets",
              "MARKET1501")
    assert out.exit_code == 0, out.output
    assert "2 cell(s) to plan" in out.output
    assert "IDE A" in out.output and "IDE B" in out.output
    out = cli("run", spec, "--dry-run", "--rows", "ide-a")
    assert out.exit_code == 2
    assert "unknown row 'ide-a' — did you mean 'IDE A'" in out.output
    out = cli("run", spec, "--dry-run", "--datasets", "markt")
    assert out.exit_code == 2 and "did you mean 'market'" in out.output
    out = cli("run", tmp_path / "nowhere.yaml", "--dry-run")
    assert out.exit_code == 2 and "no such spec file or folder" in out.output


def test_folder_dry_run_estimates_and_shared_trainings(tmp_path):
    write_spec(tmp_path, "table1")
    write_spec(tmp_path, "table2")
    out = cli("run", tmp_path / "papers" / "demo", "--dry-run", "--throughput", "5000")
    assert out.exit_code == 0, out.output
    # Full recipe: 60 epochs × Market-1501's published 12,936 training images (not on disk).
    assert out.output.count("776,160") == 4 and out.output.count("12,936") == 4
    hours = 60 * 12936 / 5000 / 3600
    assert f"{hours:.2f}" in out.output
    # table2 repeats table1's trainings: counted once, named as shared.
    assert "same training as table1:ide-a__market__s0" in out.output
    unknown = "(+ 1 cell(s) of unknown size)"  # the row of an unregistered method
    assert (f"table total: 3 cell(s), 2 training(s), 1,552,320 training images {unknown}; "
            f"{2 * hours:.2f} GPU-h") in out.output
    assert f"table total: 3 cell(s), 0 training(s), 0 training images {unknown}; 0.00 GPU-h" \
        in out.output
    assert (f"total over 2 table(s): 6 cell(s), 2 training(s), 1,552,320 training images (+ 2 "
            f"cell(s) of unknown size); {2 * hours:.2f} GPU-h") in out.output
    # Without a throughput: images but no time; quoted rows and unknown methods never plan.
    out = cli("run", tmp_path / "papers", "--dry-run")
    assert "pass --throughput" in out.output and "776,160" in out.output


def test_dry_run_counts_a_subset_on_disk(tmp_path):
    data = tmp_path / "data"
    market_subset(data)
    spec = write_spec(tmp_path)
    out = cli("run", spec, "--dry-run", "--subset", "--smoke-recipe", "--rows", "IDE A",
              "--data-root", data, "--throughput", "100")
    assert out.exit_code == 0, out.output
    # 48 training images on disk × 8 smoke epochs.
    assert re.search(r"IDE A\s+market\s+0\s+8\s+48\s+384\s", out.output), out.output
    assert "counted on disk" in out.output


def test_identical_trainings_are_shared_across_tables(tmp_path):
    data = tmp_path / "data"
    market_subset(data)
    write_spec(tmp_path, "table1")
    write_spec(tmp_path, "table2")
    res = tmp_path / "results"
    out = cli("run", tmp_path / "papers", "--subset", "--smoke-recipe", "--rows", "IDE A",
              "--data-root", data, "--results-dir", res, "--device", "cpu", "--quiet")
    assert out.exit_code == 0, out.output
    assert out.output.count("reusing trained model") == 1  # table2 reuses table1's training
    # One trained model on disk, keyed without the table.
    assert len(list((res / "_artifacts").rglob("model.pt"))) == 1
    a = results.read_results(results.table_csv(res, "demo", "table1"))
    b = results.read_results(results.table_csv(res, "demo", "table2"))
    assert a["train_hash"].tolist() == b["train_hash"].tolist()
    assert a["rank1"].tolist() == b["rank1"].tolist()


def test_smoke_and_smoke_recipe_exclude_each_other(tmp_path):
    spec = write_spec(tmp_path)
    out = CliRunner().invoke(main, ["run", str(spec), "--smoke", "--smoke-recipe", "--dry-run"])
    assert out.exit_code == 2 and "exclude each other" in out.output


def test_report_outside_a_repository_fails(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["report"])
    assert out.exit_code == 2 and "no spec files found" in out.output
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("tier", ["smoke_recipe"])
def test_tier_is_part_of_the_cell_id(tier):
    assert results.cell_id("IDE A", "market", 0, tier) == "ide-a__market__s0__smoke_recipe"
    assert (results.cell_id("IDE A", "market", 0, tier)
            != results.cell_id("IDE A", "market", 0, "smoke"))


def test_fmn_folder_dry_run_prints_per_table_and_total_gpu_hours(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    out = cli("run", "papers/fmn/", "--dry-run", "--throughput", "5000")
    assert out.exit_code == 0, out.output
    assert out.output.count("table total:") == 5
    # FMN: GRN stage + MN/LAN stage, 75 epochs in all, over Market's 12,936 training images.
    assert re.search(r"GRN\s+market\s+0\s+75\s+12,936\s+970,200\s+0\.05", out.output)
    total = re.search(r"total over 5 table\(s\): .*; ([\d.]+) GPU-h", out.output)
    tables = [float(x) for x in re.findall(r"table total: .*; ([\d.]+) GPU-h", out.output)]
    assert total and abs(float(total.group(1)) - sum(tables)) < 0.02
