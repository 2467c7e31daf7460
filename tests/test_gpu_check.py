"""benchmarks/gpu_check.py (``nox -s gpu``): its CPU dry path, its fault handling and time
budget, its figures' arithmetic, and the GPU CI workflow files (validated against the
GitHub-workflow and GitLab-CI schemas vendored by check-jsonschema, offline)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check as gc  # noqa: E402

PART = {
    "type": "object",
    "required": ["status", "seconds", "timeout_s", "reason", "figures"],
    "properties": {
        "status": {"enum": list(gc.STATUSES)},
        "seconds": {"type": "number", "minimum": 0},
        "reason": {"type": ["string", "null"]},
        "figures": {"type": "object"},
    },
    # ok ⇔ no reason and some figures; anything else must say why.
    "if": {"properties": {"status": {"const": "ok"}}},
    "then": {"properties": {"reason": {"type": "null"}, "figures": {"minProperties": 1}}},
    "else": {"properties": {"reason": {"type": "string", "minLength": 5}}},
}
SUMMARY = {
    "type": "object",
    "required": ["schema", "started_at", "finished_at", "wall_s", "budget_s", "tiny",
                 "environment", "parts"],
    "properties": {
        "schema": {"const": gc.SCHEMA},
        "environment": {"type": "object",
                        "required": ["torch", "cuda", "device_name", "cpu_count", "git_commit"]},
        "parts": {"type": "object", "required": list(gc.PARTS),
                  "additionalProperties": PART},
    },
}


def _run(out: Path, *args: str, fault: str = "", timeout: float = 600) -> tuple[int, dict]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env[gc.FAULT_ENV] = fault
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out",
                           str(out), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    summary = json.loads((out / "gpu_check.json").read_text())
    jsonschema.validate(summary, SUMMARY)
    return proc.returncode, summary


@pytest.mark.slow
def test_cpu_dry_path_runs_every_part_and_records_faults(tmp_path):
    """Every part runs on CPU at tiny sizes; a hanging part (shakedown) is killed at its
    timeout and a failing one (eval) recorded, while the others still produce their figures."""
    out = tmp_path / "gc"
    # (pytest's collection alone takes 30 s on a loaded 2-core machine: room for the tests part)
    rc, s = _run(out, "--budget-s", "400", "--part-timeout", "shakedown=3",
                 "--part-timeout", "tests=150", fault="shakedown:hang,eval:raise")
    parts = s["parts"]
    assert rc == 1  # not every part ok
    assert parts["shakedown"]["status"] == "timeout" and parts["shakedown"]["seconds"] < 15
    assert parts["eval"]["status"] == "failed"
    assert "injected fault 'eval:raise'" in parts["eval"]["reason"]

    te = parts["tests"]
    assert te["status"] == "ok", te["reason"]
    assert te["figures"]["mode"].startswith("collect-only")  # no CUDA here
    assert te["figures"]["counts"]["collected"] >= 4  # tests/test_scale_gpu.py has 4

    tp = parts["throughput"]
    assert tp["status"] == "ok", tp["reason"]
    runs = tp["figures"]["runs"]
    assert set(runs) == {f"{c}@2" for c in gc.THROUGHPUT_CONFIGS}
    for key in ("fp32@2", "tf32@2", "bf16+cl@2"):
        assert runs[key]["status"] == "ok" and runs[key]["img_per_s"] > 0
        assert runs[key]["mfu"] is None  # no peak FLOPs for a CPU: never a made-up MFU
    assert runs["bf16+cl@2"]["accel"]["tag"].startswith("bf16+cl")
    assert runs["fp32@2"]["accel"]["tag"].startswith("fp32")
    assert runs["bf16+cl+compile@2"]["status"] == "not_run"
    assert "compile" in runs["bf16+cl+compile@2"]["reason"]
    assert tp["figures"]["fastest"]["img_per_s"] == max(
        r["img_per_s"] for r in runs.values() if r["status"] == "ok")
    dp = tp["figures"]["data_path"]
    assert dp["runs"] and all(r["img_per_s"] > 0 for r in dp["runs"].values())

    pa = parts["parity"]
    runs = pa["figures"]["runs"]
    f, b = runs["fp32"], runs["bf16+cl"]
    assert f["status"] == "ok" and 0 <= f["rank1"] <= 100 and 0 < f["mAP"] <= 100 \
        and f["final_loss"] > 0
    if b["status"] == "failed":
        # torch's CPU bf16 + channels_last kernels are not deterministic: the same tiny run
        # (OMP_NUM_THREADS=1, same seed and data) gives a different bf16 loss each time and
        # sometimes NaN at its first steps (2 of 3 runs on 007ba24 too; fp32 is bit-stable).
        # The check must then record that divergence as its finding, never pass over it.
        assert "DivergedError" in b["reason"] and "bf16" in b["reason"], b
        assert pa["status"] == "failed" and "bf16+cl" in pa["reason"], pa
    else:
        assert pa["status"] == "ok", pa["reason"]
        assert 0 <= b["rank1"] <= 100 and 0 < b["mAP"] <= 100 and b["final_loss"] > 0
        assert pa["figures"]["comparison"]["d_mAP"] == pytest.approx(b["mAP"] - f["mAP"],
                                                                     abs=0.011)

    md = (out / "gpu_check.md").read_text()
    for name in gc.PARTS:
        assert f"| {name} | {parts[name]['status']} |" in md
    assert "not measurements" in md  # --tiny figures are labelled as such
    assert s["wall_s"] <= 400


def test_shakedown_without_the_flags_fails_cleanly(tmp_path, monkeypatch):
    """A `reid-bench run` without a flag the shakedown needs (before issue 16 is merged) is a
    recorded failure naming the flag, not a crash of the check."""
    import argparse
    import time

    monkeypatch.setattr(gc, "SHAKEDOWN_FLAGS", ("--shakedown", "--no-such-flag-xyz"))
    (tmp_path / "parts").mkdir()
    rec = gc.Recorder(tmp_path / "parts" / "shakedown.json")
    a = argparse.Namespace(tiny=True, device="cpu", out=str(tmp_path), specs=None,
                           workdir=str(tmp_path / "parts"), deadline=time.time() + 120,
                           data_root=str(tmp_path / "data"))
    with pytest.raises(RuntimeError, match="--no-such-flag-xyz"):
        gc.part_shakedown(rec, a)


@pytest.mark.slow
def test_budget_holds_when_parts_hang(tmp_path):
    """Two hanging parts share an 8 s budget: both are killed in time and recorded; unselected
    parts are listed as not run."""
    rc, s = _run(tmp_path / "gc", "--parts", "eval,tests", "--budget-s", "8",
                 fault="tests:hang,eval:hang", timeout=60)
    p = s["parts"]
    assert rc == 1
    assert p["tests"]["status"] == p["eval"]["status"] == "timeout"
    assert p["tests"]["seconds"] + p["eval"]["seconds"] < 8 + 1  # + the kill
    assert s["wall_s"] < 8 + gc.ENV_GRACE_S  # the environment probe's grace at most
    assert p["tests"]["timeout_s"] + p["eval"]["timeout_s"] <= 8
    # shares: tests 0.08, eval 0.08 of what is left → the first gets half the budget
    assert p["tests"]["timeout_s"] == pytest.approx(4, abs=0.5)
    for name in ("shakedown", "throughput", "parity"):
        assert p[name]["status"] == "not_run" and "not selected" in p[name]["reason"]


def test_part_timeout_option_is_validated():
    with pytest.raises(SystemExit, match="PART=SECONDS"):
        gc._timeouts(["bogus=3"])
    assert gc._timeouts(["eval=2.5"]) == {"eval": 2.5}


def test_peak_flops_table():
    # NVIDIA data sheets, dense: H100/H200 SXM BF16 989.4, TF32 494.7, FP32 66.9 TFLOP/s.
    assert gc.peak_tflops("NVIDIA H200", "bf16") == 989.4
    assert gc.peak_tflops("NVIDIA H100 80GB HBM3", "tf32") == 494.7
    assert gc.peak_tflops("NVIDIA H100 PCIe", "bf16") == 756.5  # PCIe before the generic H100
    assert gc.peak_tflops("NVIDIA A100-SXM4-80GB", "fp32") == 19.5
    assert gc.peak_tflops("Tesla T4", "bf16") is None  # unknown: no MFU rather than a guess


def test_flops_per_image_matches_resnet50_reference():
    """torchvision documents ResNet-50 at 224×224 as 4.09 G multiply-adds per forward pass;
    a training step (forward + backward ≈ 3 forwards, 2 FLOPs per multiply-add) is ≈ 24.5
    GFLOPs. The IDE head adds 2048×751 multiply-adds, negligible."""
    f = gc.flops_per_image(1.0, (224, 224))
    assert f == pytest.approx(3 * 2 * 4.09e9, rel=0.02)
    # FLOPs scale with the pixel count: 256×128 has 0.653× the pixels of 224×224.
    assert gc.flops_per_image(1.0, (256, 128)) == pytest.approx(f * 256 * 128 / 224**2, rel=0.01)


def test_build_accel_maps_precisions():
    acc = gc.build_accel("bf16", True, False, "cpu")
    assert acc.amp_dtype == "bfloat16" and acc.channels_last and not acc.compile
    acc = gc.build_accel("fp32", False, False, "cpu")
    assert acc.amp_dtype is None and not acc.channels_last


def test_junit_counts(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
                   '<testcase classname="tests.a" name="t1"/>'
                   '<testcase classname="tests.a" name="t2"><failure message="x"/></testcase>'
                   '<testcase classname="tests.a" name="t3"><skipped/></testcase>'
                   '</testsuite></testsuites>')
    counts, failed = gc._junit_counts(xml)
    assert counts == {"tests": 3, "failures": 1, "errors": 0, "skipped": 1}
    assert failed == ["tests.a::t2"]


# ---- the CI workflow files -----------------------------------------------------------------

def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe, "check-jsonschema is missing: pip install -e '.[dev]'"
    return subprocess.run([exe, "--builtin-schema", schema, str(path)], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("schema,path", [
    ("vendor.github-workflows", REPO / ".github" / "workflows" / "gpu.yml"),
    ("vendor.gitlab-ci", REPO / ".gitlab-ci.yml"),
])
def test_ci_files_match_their_schema(schema, path, tmp_path):
    res = _check_jsonschema(schema, path)
    assert res.returncode == 0, res.stdout + res.stderr
    # The check can fail: the same file with its jobs' runner key misspelt is rejected.
    text = path.read_text()
    bad = tmp_path / path.name
    bad.write_text(text.replace("runs-on:", "run-on:") if "runs-on:" in text
                   else text.replace("  script:", "  scripts:", 1))
    assert bad.read_text() != text
    assert _check_jsonschema(schema, bad).returncode != 0


def test_gpu_workflow_runs_nox_gpu_on_gpu_runners_and_uploads_artifacts():
    import yaml

    wf = yaml.safe_load((REPO / ".github" / "workflows" / "gpu.yml").read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as a boolean
    assert "push" in on and on["schedule"]
    for job in wf["jobs"].values():
        assert job["runs-on"] == ["self-hosted", "gpu"]
        steps = job["steps"]
        assert any("nox -s gpu" in s.get("run", "") for s in steps)
        up = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
        assert up and up[0]["if"] == "always()"
        paths = up[0]["with"]["path"]
        for f in ("gpu_check.json", "gpu_check.md", "report/"):
            assert f in paths
    nightly = wf["jobs"]["nightly-shakedown"]
    assert "--parts shakedown" in " ".join(s.get("run", "") for s in nightly["steps"])


def test_shakedown_table_cells_read_back_from_the_csv(tmp_path):
    """Per-table cell counts come from the results CSV's shakedown tier, against the planned
    cells: a diverged cell counts as diverged, a full-tier row is not a shakedown result, and a
    missing cell leaves ok < planned."""
    from reid_bench.spec import load_spec
    from reid_bench.store.results import table_csv, upsert_row

    spec = load_spec(REPO / "papers" / "fmn" / "table5.yaml")  # 4 rows × market × 1 seed
    csv = table_csv(tmp_path, spec.paper.id, spec.table.id)
    base = {"paper": spec.paper.id, "table": spec.table.id, "dataset": "market", "seed": 0}
    upsert_row(csv, base | {"row": "Pool1", "tier": "shakedown", "status": "ok"})
    upsert_row(csv, base | {"row": "Res2", "tier": "shakedown", "status": "diverged",
                            "error": "loss became nan at step 2\ntraceback"})
    upsert_row(csv, base | {"row": "Res3", "tier": "full", "status": "ok"})
    got = gc._table_cells(tmp_path, spec, [])
    assert got["planned"] == 4
    assert got["counts"] == {"ok": 1, "diverged": 1}
    assert [c["error"] for c in got["cells"] if c["status"] == "diverged"] == [
        "loss became nan at step 2"]
    assert gc._table_cells(tmp_path, spec, ["Pool1"])["planned"] == 1
