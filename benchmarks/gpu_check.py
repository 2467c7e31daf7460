"""One prepared GPU check: CUDA tests, every table's shakedown, training throughput, precision
parity and evaluation speed, in one bounded run that writes a JSON and a markdown summary.

    python benchmarks/gpu_check.py --device cuda                 # what `nox -s gpu` runs
    python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gc   # the CPU dry path (CI)
    python benchmarks/gpu_check.py --parts shakedown --budget-s 5400   # nightly: every table

Parts (``--parts``, default all, in this order):

1. ``tests``: the CUDA-marked tests (``pytest -m gpu tests``); without CUDA only collected.
2. ``shakedown``: ``python -m reid_bench run SPEC --shakedown --shakedown-pretrained none`` for
   every spec (papers/*/table*.yaml): per table wall time, peak memory and ok/failed/diverged
   per cell, read from the results CSV; then the HTML report of those results.
3. ``throughput``: ResNet-50 (IDE head, 751 ids) at 256×128 trained by the real
   ``reid_bench.engine.train.train_stage`` at batch 64 and 128 under fp32, TF32, bf16 + channels_last
   and bf16 + channels_last + torch.compile: images/s and model FLOP utilisation (FLOPs counted
   by ``torch.utils.flop_counter``); then the data path: JPEG files on local disk through the
   real transforms and ``make_loader`` with the default workers, against the fastest rate.
4. ``parity``: the same short IDE training on Market-sized synthetic data in fp32 and in
   bf16 + channels_last (same seed), comparing rank-1 / mAP / final loss; a second fp32 seed
   gives the seed-to-seed spread to judge the difference against (when time is left).
5. ``eval``: ``evaluate_rank`` and ``re_rank`` at Market size and at N = 50,000 on the device.

Robustness: each part runs in its own process (own session, killed with its process group on
timeout) under a per-part timeout carved out of ``--budget-s``; a failing or hanging part is
recorded (``failed`` / ``timeout`` with the reason and what it measured so far) and the rest
still runs. Parts write their figures as they go, so a timeout keeps the finished measurements.
``REID_BENCH_GPU_CHECK_FAULT=<part>:raise|hang`` injects a fault (tests of this script).

Output: ``<out>/gpu_check.json`` (schema ``reid-bench-gpu-check/1``), ``<out>/gpu_check.md``,
``<out>/report/`` (the HTML report of the shakedown results) and ``<out>/parts/*.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "reid-bench-gpu-check/1"
PARTS = ("tests", "shakedown", "throughput", "parity", "eval")
STATUSES = ("ok", "failed", "timeout", "not_run")
# Share of the budget each part gets (leftovers of a part that finishes early flow to the next).
SHARES = {"tests": 0.08, "shakedown": 0.37, "throughput": 0.25, "parity": 0.22, "eval": 0.08}
FAULT_ENV = "REID_BENCH_GPU_CHECK_FAULT"
ENV_GRACE_S = 30.0  # the most the environment probe may run past the parts
NUM_CLASSES = 751  # Market-1501 training identities

# Dense (no 2:4 sparsity) peak throughput in TFLOP/s per precision, from NVIDIA's data sheets:
# "NVIDIA H100 Tensor Core GPU" data sheet (SXM: FP32 67, TF32 989*, BF16 1,979*; PCIe: 51,
# 756*, 1,513*) and "NVIDIA H200 Tensor Core GPU" data sheet (H200 SXM: same compute as H100
# SXM), "NVIDIA A100 Tensor Core GPU" data sheet (FP32 19.5, TF32 156, BF16 312 dense).
# * = quoted with sparsity; the dense figure is half. First matching substring wins.
PEAK_TFLOPS = (
    ("H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5}),
    ("H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.5}),
    ("H100", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}),
)

# name: (precision, channels_last, compile)
THROUGHPUT_CONFIGS = {
    "fp32": ("fp32", False, False),
    "tf32": ("tf32", False, False),
    "bf16+cl": ("bf16", True, False),
    "bf16+cl+compile": ("bf16", True, True),
}


# --------------------------------------------------------------------------------------------
# Adapters to the reid_bench API (kept small so a change there is a one-place fix)
# --------------------------------------------------------------------------------------------

def build_accel(precision: str, channels_last: bool, compile_: bool, device: Any):
    """The resolved ``reid_bench.engine.accel.Accel`` for ``precision`` (fp32/tf32/bf16/fp16).

    Uses ``AccelOptions(precision=...)`` where reid_bench has it, else the older
    ``AccelOptions(amp=...)``; the old ``resolve`` turns TF32 on for every CUDA run, so for
    plain fp32 it is switched back off here (TF32 is what ``tf32`` measures)."""
    import torch

    from reid_bench.engine import accel

    fields = getattr(accel.AccelOptions, "model_fields", {})
    if "precision" in fields:
        opts = accel.AccelOptions(precision=precision, channels_last=channels_last,
                                  compile=compile_)
        acc = accel.resolve(opts, device)
    else:
        amp = {"fp32": "off", "tf32": "off", "bf16": "bf16", "fp16": "fp16"}[precision]
        acc = accel.resolve(accel.AccelOptions(amp=amp, channels_last=channels_last,
                                               compile=compile_), device)
        if torch.device(device).type == "cuda":
            tf32 = precision != "fp32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
    return acc


def accel_info(acc: Any) -> dict[str, Any]:
    """What actually ran: the Accel's tag plus the TF32 switches in force."""
    import torch

    return {"tag": getattr(acc, "tag", str(acc)),
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32)}


def default_num_workers(device: str) -> tuple[int, str]:
    """``reid-bench run``'s default ``--num-workers`` (the loader users get) and where it came
    from. A callable or None default (an "auto" value) is resolved the way the CLI would."""
    from reid_bench.cli import main

    param = next((p for p in main.commands["run"].params if p.name == "num_workers"), None)
    value = getattr(param, "default", 0) if param is not None else 0
    if callable(value):
        value = value()
    if value is None:  # "auto": what the runner resolves it to, if it says
        from reid_bench.run import runner

        fn = getattr(runner, "default_num_workers", None)
        value = fn(device) if fn else min(8, os.cpu_count() or 1)
    return int(value), "reid-bench run --num-workers default"


def peak_tflops(device_name: str, precision: str) -> float | None:
    for key, table in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return table.get(precision)
    return None


# --------------------------------------------------------------------------------------------
# Helpers shared by the parts
# --------------------------------------------------------------------------------------------

class Recorder:
    """A part's figures, written atomically to its JSON after every update, so the orchestrator
    still has them if the part is killed at its timeout."""

    def __init__(self, path: Path):
        self.path = path
        self.figures: dict[str, Any] = {}
        self.status = "running"
        self.reason: str | None = None

    def set(self, key: str, value: Any) -> None:
        self.figures[key] = value
        self.flush()

    def flush(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"status": self.status, "reason": self.reason,
                                   "figures": self.figures}, indent=1, default=_jsonable))
        os.replace(tmp, self.path)


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: Any) -> float | None:
    import torch

    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return None


def _rss_gib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def _sub_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _run_child(cmd: list[str], timeout: float, log: Path) -> tuple[int | None, float, float]:
    """Run ``cmd`` in its own session with output to ``log``; kill its process group after
    ``timeout`` s. Returns (exit code or None on timeout, wall s, peak RSS GiB of the child)."""
    t0 = time.perf_counter()
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_sub_env(), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = t0 + max(0.0, timeout)
        rc, rusage = None, None
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc, rusage = os.waitstatus_to_exitcode(status), ru
                proc.returncode = rc
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)  # anything it left running
                break
            if time.perf_counter() >= deadline:
                rusage = _kill_group(proc)
                break
            time.sleep(0.05)
    rss = round(rusage.ru_maxrss / 2**20, 3) if rusage is not None else None
    return rc, time.perf_counter() - t0, rss


def _kill_group(proc: subprocess.Popen) -> Any:
    """SIGKILL ``proc``'s process group (the part and everything it started); returns the
    reaped child's rusage."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return ru
    except ChildProcessError:
        return None


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _inject_fault(part: str) -> None:
    want = os.environ.get(FAULT_ENV, "")
    for item in filter(None, want.split(",")):
        name, _, kind = item.partition(":")
        if name == part:
            if kind == "hang":
                time.sleep(10**6)
            raise RuntimeError(f"injected fault {item!r} ({FAULT_ENV})")


# --------------------------------------------------------------------------------------------
# Part 1: CUDA-marked tests
# --------------------------------------------------------------------------------------------

def part_tests(rec: Recorder, a: argparse.Namespace) -> None:
    import torch

    cuda = torch.device(a.device).type == "cuda" and torch.cuda.is_available()
    log = Path(a.workdir) / "pytest.log"
    junit = Path(a.workdir) / "pytest-gpu.xml"
    where = ["tests"]
    if a.tiny:  # only the files that hold gpu-marked tests: collecting all of tests/ is slow
        where = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")
                       if "mark.gpu" in p.read_text(errors="replace")) or where
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", *where, "-p", "no:cacheprovider",
           f"--junitxml={junit}"]
    if not cuda:
        cmd.append("--collect-only")  # they need CUDA: check they import and collect
    rc, wall, _ = _run_child(cmd, a.deadline - time.time(), log)
    rec.set("mode", "run" if cuda else "collect-only (no CUDA device)")
    rec.set("wall_s", round(wall, 1))
    if rc is None:
        raise TimeoutError(f"pytest -m gpu did not finish in time; log tail: {_tail(log, 400)}")
    counts, failed = _junit_counts(junit)
    if not cuda:  # collect-only: the JUnit file lists no test; pytest's summary line does
        import re

        m = re.search(r"(\d+)(?:/\d+)? tests? collected", _tail(log, 2000))
        counts = {"collected": int(m.group(1)) if m else 0}
        if not counts["collected"]:
            raise RuntimeError(f"no gpu-marked test collected; log tail: {_tail(log, 400)}")
    rec.set("counts", counts)
    rec.set("failed_tests", failed)
    if rc != 0 or failed:
        raise RuntimeError(f"pytest -m gpu exited {rc}: {len(failed)} failed "
                           f"({', '.join(failed[:5])}); log tail: {_tail(log, 400)}")
    if counts.get("tests", 0) == 0 and cuda:
        raise RuntimeError("pytest -m gpu ran no test")


def _junit_counts(path: Path) -> tuple[dict[str, int], list[str]]:
    import xml.etree.ElementTree as ET

    if not path.is_file():
        return {}, []
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites)
              for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    return counts, failed


# --------------------------------------------------------------------------------------------
# Part 2: shakedown of every table
# --------------------------------------------------------------------------------------------

SHAKEDOWN_FLAGS = ("--shakedown", "--shakedown-pretrained")


def part_shakedown(rec: Recorder, a: argparse.Namespace) -> None:
    from reid_bench.spec import find_specs, load_spec

    help_log = Path(a.workdir) / "run-help.log"
    rc, _, _ = _run_child([sys.executable, "-m", "reid_bench", "run", "--help"], 60, help_log)
    tiny_flags = ("--shakedown-max-batch", "--shakedown-steps") if a.tiny else ()
    missing = [f for f in SHAKEDOWN_FLAGS + tiny_flags if f not in _tail(help_log, 100_000)]
    if rc != 0 or missing:
        raise RuntimeError(f"`reid-bench run` has no {' / '.join(missing) or 'help'} flag "
                           "(the shakedown tier of issue 16 is not in this checkout)")
    results = Path(a.out) / "shakedown-results"
    specs = [Path(p) for p in (a.specs or find_specs(None))]
    if a.tiny:
        specs = specs[:1]
    tables: dict[str, Any] = {}
    rec.set("results_dir", str(results))
    rec.set("tables", tables)
    bad = []
    for path in specs:
        spec = load_spec(path)
        name = f"{spec.paper.id}/{spec.table.id}"
        rows = [r.name for r in spec.rows if r.runnable][:1] if a.tiny else []
        left = a.deadline - time.time() - (30 if not a.tiny else 5)  # keep time for the report
        if left <= 5:
            tables[name] = {"status": "not_run", "reason": "part time budget spent"}
            bad.append(name)
            rec.flush()
            continue
        cmd = [sys.executable, "-m", "reid_bench", "run", str(path), "--shakedown",
               "--shakedown-pretrained", "none", "--results-dir", str(results),
               "--device", a.device,
               "--data-root", str(a.data_root)]
        for r in rows:
            cmd += ["--rows", r]
        if a.tiny:
            cmd += ["--shakedown-max-batch", "2", "--shakedown-steps", "1"]
        log = Path(a.workdir) / f"shakedown-{spec.paper.id}-{spec.table.id}.log"
        rc, wall, rss = _run_child(cmd, left, log)
        entry = _table_cells(results, spec, rows)
        entry.update(wall_s=round(wall, 1), exit_code=rc, peak_rss_gib=rss,
                     command=" ".join(cmd[1:]))
        if rc is None:
            entry["status"], entry["reason"] = "timeout", f"killed after {wall:.0f} s"
        elif rc != 0 or entry["counts"].get("ok", 0) != entry["planned"]:
            entry["status"] = "failed"
            entry["reason"] = (f"exit {rc}; {entry['counts']} of {entry['planned']} planned; "
                               f"log tail: {_tail(log, 300)}")
        else:
            entry["status"] = "ok"
        if entry["status"] != "ok":
            bad.append(name)
        tables[name] = entry
        rec.flush()
    report = Path(a.out) / "report"
    rc, wall, _ = _run_child([sys.executable, "-m", "reid_bench", "report", "--results-dir",
                              str(results), "--out", str(report)],
                             max(10.0, a.deadline - time.time()), Path(a.workdir) / "report.log")
    rec.set("html_report", str(report / "index.html") if rc == 0 else f"failed (exit {rc})")
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(specs)} table(s) not all ok: {', '.join(bad)}")


def _table_cells(results: Path, spec: Any, rows: list[str]) -> dict[str, Any]:
    """Per-cell status (and the CSV's per-cell figures) of one table's shakedown tier."""
    from reid_bench.store.results import read_results, table_csv
    from reid_bench.table.plan import plan

    planned = len(plan(spec, rows=rows or None))
    try:
        df = read_results(table_csv(results, spec.paper.id, spec.table.id))
    except Exception as exc:  # noqa: BLE001 - a broken CSV is a finding, not a crash
        return {"planned": planned, "counts": {}, "cells": [], "csv_error": str(exc)}
    if "tier" in df.columns:
        df = df[df["tier"] == "shakedown"]
    # Per-cell figures the shakedown tier records (issue 16: peak GPU memory, step time, losses).
    extra = [c for c in df.columns if any(k in c for k in ("peak", "mem", "loss", "step_s"))]
    cells = []
    for r in df.to_dict("records"):
        cells.append({"row": r.get("row"), "dataset": r.get("dataset"), "split": r.get("split"),
                      "seed": r.get("seed"), "status": r.get("status"),
                      "error": str(r.get("error") or "").splitlines()[0][:200] or None,
                      **{c: r.get(c) for c in extra}})
    counts: dict[str, int] = {}
    for c in cells:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    mem_cols = [c for c in extra if "peak" in c or "mem" in c]
    peak = max((float(c[m]) for c in cells for m in mem_cols
                if c.get(m) is not None and c[m] == c[m]), default=None)
    return {"planned": planned, "counts": counts, "peak_memory": peak,
            "peak_memory_column": mem_cols[0] if mem_cols else None, "cells": cells}


# --------------------------------------------------------------------------------------------
# Data shared by parts 3 and 4: Market-sized synthetic JPEGs on local disk
# --------------------------------------------------------------------------------------------

def market_options(tiny: bool) -> dict[str, int]:
    """Synthetic dataset options: Market-1501's shape (751 train ids, ~18 images each; 750 test
    ids; 3,000 queries; ~17k gallery images with 2,793 distractors and 3,819 junk) at Market's
    native 128×64, or a handful of images for the CPU dry path."""
    if tiny:
        return dict(num_train_ids=8, num_test_ids=6, num_cams=3, images_per_cam=1,
                    queries_per_id=1, mq_per_query=0, num_distractors=2, num_junk=2)
    return dict(num_train_ids=751, num_test_ids=750, num_cams=6, images_per_cam=3,
                queries_per_id=4, mq_per_query=0, num_distractors=2793, num_junk=3819)


def load_market_like(a: argparse.Namespace, wait: bool = True):
    from reid_bench.data.synthetic import load_synthetic

    if wait and getattr(a, "data_ready", None):  # generated in the background by the orchestrator
        _wait_for(Path(a.data_ready), a.deadline)
    return load_synthetic(Path(a.data_root), **market_options(a.tiny))


# --------------------------------------------------------------------------------------------
# Part 3: training throughput and the data path
# --------------------------------------------------------------------------------------------

def _ide_model(width: float, device: Any):
    from reid_bench.engine.recipe import BackboneRecipe
    from reid_bench.models._common import StandardRecipe
    from reid_bench.models.ide import IDE, IDEParams

    recipe = StandardRecipe(backbone=BackboneRecipe(pretrained="none", width=width))
    return IDE().build(IDEParams(), recipe, NUM_CLASSES).to(device)


def flops_per_image(width: float, hw: tuple[int, int]) -> float:
    """Forward + backward FLOPs of one training image (FlopCounterMode on the meta device: shapes
    only, no compute)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = _ide_model(width, "meta")
        x = torch.randn(2, 3, *hw)
        y = torch.randint(0, NUM_CLASSES, (2,))
    model.train()
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), y).backward()
    return fc.get_total_flops() / 2


def part_throughput(rec: Recorder, a: argparse.Namespace) -> None:
    import torch

    from reid_bench.engine.recipe import OptimRecipe
    from reid_bench.engine.train import train_stage
    from reid_bench.models._common import softmax_step

    dev = torch.device(a.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    width, hw = (0.25, (64, 32)) if a.tiny else (1.0, (256, 128))
    batches = (2,) if a.tiny else (64, 128)
    steps, epochs = (2, 2) if a.tiny else (40, 3)  # epoch 0 warms up (cudnn autotune, compile)
    fpi = flops_per_image(width, hw)
    rec.set("setup", {"device": name, "model": f"IDE ResNet-50 width {width}, {NUM_CLASSES} ids",
                      "input": f"{hw[0]}x{hw[1]}", "steps_per_epoch": steps, "epochs": epochs,
                      "measured": "epochs after the first; batches resident on the device",
                      "flops_per_image": fpi, "loop": "reid_bench.engine.train.train_stage"})
    runs: dict[str, Any] = {}
    rec.set("runs", runs)
    for cfg, (precision, cl, comp) in THROUGHPUT_CONFIGS.items():
        # compile (a minute per shape) does the larger batch first: the likely fastest setting
        for bs in sorted(batches, reverse=comp):
            key = f"{cfg}@{bs}"
            if comp and a.tiny:
                runs[key] = {"status": "not_run",
                             "reason": "torch.compile skipped in --tiny (minutes of CPU compile)"}
                rec.flush()
                continue
            try:
                torch.manual_seed(0)
                acc = build_accel(precision, cl, comp, dev)
                model = _ide_model(width, dev)
                x = torch.randn(bs, 3, *hw, device=dev)
                y = torch.randint(0, NUM_CLASSES, (bs,), device=dev)
                _reset_peak(dev)
                hist = train_stage(model, [(x, y)] * steps, softmax_step(model, dev),
                                   OptimRecipe(lr=0.01, epochs=epochs, batch_size=bs),
                                   device=dev, stage=key, accel=acc)
                _sync(dev)
                secs = sum(h["seconds"] for h in hist[1:])
                ips = bs * steps * (len(hist) - 1) / secs
                peak = peak_tflops(name, precision) if dev.type == "cuda" else None
                runs[key] = {"status": "ok", "img_per_s": round(ips, 1),
                             "first_epoch_s": round(hist[0]["seconds"], 2),
                             "achieved_tflops": round(ips * fpi / 1e12, 2),
                             "peak_tflops": peak,
                             "mfu": round(ips * fpi / (peak * 1e12), 4) if peak else None,
                             "final_loss": round(hist[-1]["loss"], 4),
                             "peak_mem_gib": _peak_gib(dev), "accel": accel_info(acc)}
                del model, x, y
            except Exception as exc:  # noqa: BLE001 - one setting failing (OOM, compile) is a finding
                runs[key] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
            finally:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            rec.flush()
    ok = {k: v for k, v in runs.items() if v.get("status") == "ok"}
    if not ok:
        raise RuntimeError("no throughput setting ran")
    best = max(ok, key=lambda k: ok[k]["img_per_s"])
    rec.set("fastest", {"setting": best, "img_per_s": ok[best]["img_per_s"],
                        "goal_img_per_s": 6000.0,
                        "goal_met": ok[best]["img_per_s"] >= 6000.0 if dev.type == "cuda"
                        else None})
    rec.set("data_path", _data_path(a, dev, int(best.split("@")[1]), ok[best]["img_per_s"]))
    failed = [k for k, v in runs.items() if v.get("status") == "failed"]
    if failed:
        raise RuntimeError(f"setting(s) failed: {', '.join(failed)}")


def _data_path(a: argparse.Namespace, dev: Any, batch: int, target: float) -> dict[str, Any]:
    """img/s of the real training input pipeline (JPEG decode, resize to 256×128, flip,
    normalise, collate, pinned copy to the device) at the default and at one worker per core."""
    import torch

    from reid_bench.data.samplers import make_loader
    from reid_bench.data.torch_dataset import ImageDataset
    from reid_bench.data.transforms import build_transform
    from reid_bench.engine.recipe import InputRecipe

    ds = load_market_like(a)
    inp = InputRecipe(height=64, width=32) if a.tiny else InputRecipe(height=256, width=128)
    images = ImageDataset(ds.train, build_transform(inp, train=True), relabel=True)
    default, source = default_num_workers(str(dev))
    out: dict[str, Any] = {"images": len(images), "source": "synthetic Market-layout JPEGs "
                           "(128x64) on local disk (page-cached after generation)",
                           "batch": batch, "target_img_per_s": target, "default_workers": default,
                           "default_workers_from": source, "runs": {}}
    cpus = os.cpu_count() or 1
    for workers in dict.fromkeys([default] if a.tiny else [default, cpus]):
        loader = make_loader(images, batch, shuffle=True, seed=0, num_workers=workers,
                             pin_memory=dev.type == "cuda", drop_last=True)
        n, t0, t_first = 0, time.perf_counter(), None
        limit = 2 if a.tiny else 40
        for i, (x, _y, *_rest) in enumerate(loader):
            x = x.to(dev, non_blocking=True)
            if i == 0:
                _sync(dev)
                t_first = time.perf_counter()  # worker start-up excluded
                continue
            n += x.shape[0]
            if i >= limit:
                break
        _sync(dev)
        secs = time.perf_counter() - (t_first or t0)
        ips = n / secs if secs > 0 and n else 0.0
        out["runs"][str(workers)] = {"img_per_s": round(ips, 1),
                                     "startup_s": round((t_first or t0) - t0, 2),
                                     "img_per_s_per_worker": round(ips / max(1, workers), 1),
                                     "sustains_target": ips >= target}
        del loader
    d = out["runs"][str(default)]
    out["sustains_fastest"] = d["sustains_target"]
    if not d["sustains_target"] and d["img_per_s"] > 0:
        per = (out["runs"].get(str(cpus), {}).get("img_per_s_per_worker")
               or d["img_per_s_per_worker"])
        out["why"] = (f"the default {default} worker(s) deliver {d['img_per_s']:.0f} img/s "
                      f"(~{per:.0f} img/s per worker: JPEG decode + resize + normalise on the "
                      f"CPU); {target:.0f} img/s needs ~{target / max(per, 1e-9):.0f} workers, "
                      f"this machine has {cpus} cores")
    del torch
    return out


# --------------------------------------------------------------------------------------------
# Part 4: precision parity
# --------------------------------------------------------------------------------------------

PARITY_RUNS = (("fp32", "fp32", False, 0), ("bf16+cl", "bf16", True, 0),
               ("fp32-seed1", "fp32", False, 1))


def _parity_run(name: str, precision: str, cl: bool, seed: int, ds: Any, recipe: Any,
                workers: int, dev: Any) -> dict[str, Any]:
    """One IDE training + Market evaluation under ``precision`` (the real train_stage, loader,
    embedder and evaluate_cell)."""
    import torch

    from reid_bench.data.samplers import make_loader
    from reid_bench.data.torch_dataset import ImageDataset
    from reid_bench.data.transforms import build_transform
    from reid_bench.engine.embed import make_embedder
    from reid_bench.engine.train import train_stage
    from reid_bench.eval.pipeline import evaluate_cell
    from reid_bench.models._common import backbone_and_head_groups, softmax_step
    from reid_bench.models.ide import IDE, IDEParams

    inp, optim = recipe.input, recipe.train
    t0 = time.perf_counter()
    torch.manual_seed(seed)  # same initial weights for the same seed
    acc = build_accel(precision, cl, False, dev)
    train = ImageDataset(ds.train, build_transform(inp, train=True), relabel=True)
    model = IDE().build(IDEParams(), recipe, train.num_classes).to(dev)
    loader = make_loader(train, optim.batch_size, shuffle=True, seed=seed, num_workers=workers,
                         pin_memory=dev.type == "cuda", drop_last=True)
    _reset_peak(dev)
    hist = train_stage(model, loader, softmax_step(model, dev), optim, device=dev,
                       stage=name, accel=acc,
                       groups=backbone_and_head_groups(model.backbone, model, 1.0))

    def features(x):
        with acc.autocast():
            return model(acc.prepare_batch(x))

    embed = make_embedder(features, model, inp, device=dev, num_workers=workers)
    res = evaluate_cell("market", ds, embed, device=str(dev))
    return {"status": "ok", "precision": precision, "channels_last": cl, "seed": seed,
            "rank1": round(res.metrics["rank1"], 2), "mAP": round(res.metrics["mAP"], 2),
            "final_loss": round(hist[-1]["loss"], 4),
            "losses": [round(h["loss"], 4) for h in hist],
            "wall_s": round(time.perf_counter() - t0, 1),
            "peak_mem_gib": _peak_gib(dev), "accel": accel_info(acc)}


def part_parity(rec: Recorder, a: argparse.Namespace) -> None:
    import torch

    from reid_bench.engine.recipe import BackboneRecipe, InputRecipe, OptimRecipe
    from reid_bench.models._common import StandardRecipe

    dev = torch.device(a.device)
    ds = load_market_like(a)
    width = 0.25 if a.tiny else 1.0
    inp = InputRecipe(height=64, width=32) if a.tiny else InputRecipe(height=256, width=128)
    optim = (OptimRecipe(lr=0.05, epochs=1, batch_size=8) if a.tiny else
             OptimRecipe(lr=0.05, epochs=3, batch_size=64, backbone_lr_mult=1.0))
    # Parity is about the numbers, not the loader: enough workers that decoding keeps up.
    workers = 0 if a.tiny else max(default_num_workers(str(dev))[0],
                                   min(12, os.cpu_count() or 1))
    recipe = StandardRecipe(input=inp, backbone=BackboneRecipe(pretrained="none", width=width),
                            train=optim)
    rec.set("setup", {"data": f"synthetic Market layout, {len(ds.train)} train / "
                      f"{len(ds.query)} query / {len(ds.gallery)} gallery images",
                      "model": f"IDE ResNet-50 width {width}, random init", "input": inp.model_dump(),
                      "optim": optim.model_dump(), "num_workers": workers,
                      "embedding": "under the same autocast as training"})
    runs: dict[str, Any] = {}
    rec.set("runs", runs)
    for name, precision, cl, seed in PARITY_RUNS:
        if seed and a.deadline - time.time() < (runs.get("fp32", {}).get("wall_s", 1e9) + 20):
            runs[name] = {"status": "not_run", "reason": "not enough part time left"}
            rec.flush()
            continue
        try:
            runs[name] = _parity_run(name, precision, cl, seed, ds, recipe, workers, dev)
        except Exception as exc:  # noqa: BLE001 - a diverged bf16 run is itself the finding
            runs[name] = {"status": "failed", "precision": precision, "seed": seed,
                          "reason": f"{type(exc).__name__}: {exc}"[:500]}
        rec.flush()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    failed = [k for k, v in runs.items() if v["status"] == "failed"]
    if failed:
        raise RuntimeError(f"parity run(s) failed: {', '.join(failed)}")
    f, b = runs["fp32"], runs["bf16+cl"]
    cmp = {"d_rank1": round(b["rank1"] - f["rank1"], 2), "d_mAP": round(b["mAP"] - f["mAP"], 2),
           "d_final_loss": round(b["final_loss"] - f["final_loss"], 4)}
    s = runs.get("fp32-seed1", {})
    if s.get("status") == "ok":
        cmp["seed_spread"] = {"d_rank1": round(s["rank1"] - f["rank1"], 2),
                              "d_mAP": round(s["mAP"] - f["mAP"], 2),
                              "d_final_loss": round(s["final_loss"] - f["final_loss"], 4)}
        cmp["within_seed_spread"] = (abs(cmp["d_rank1"]) <= abs(cmp["seed_spread"]["d_rank1"])
                                     and abs(cmp["d_mAP"]) <= abs(cmp["seed_spread"]["d_mAP"]))
    rec.set("comparison", cmp)


# --------------------------------------------------------------------------------------------
# Part 5: evaluation speed
# --------------------------------------------------------------------------------------------

def part_eval(rec: Recorder, a: argparse.Namespace) -> None:
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from data import market_like

    from reid_bench.eval.distance import compute_distance
    from reid_bench.eval.metrics import evaluate_rank
    from reid_bench.eval.rerank import re_rank

    dev = torch.device(a.device)
    sizes = ({"market": (40, 200, 32), "n50k": (60, 300, 32)} if a.tiny else
             {"market": (3368, 15913, 2048), "n50k": (10000, 40000, 2048)})
    rec.set("setup", {"device": str(dev), "features": "benchmarks/data.py market_like(noise=3.0)",
                      "distance": "euclidean, float32, on the device",
                      "note": "evaluate_rank and re_rank take CUDA tensors and compute there"})
    for label, (nq, ng, dim) in sizes.items():
        qf, gf, qp, gp, qc, gc = market_like(num_q=nq, num_g=ng, dim=dim, noise=3.0,
                                             num_distractors=ng // 6)
        qf, gf = qf.to(dev), gf.to(dev)
        entry: dict[str, Any] = {"queries": nq, "gallery": ng, "dim": dim}
        rec.set(label, entry)
        _reset_peak(dev)
        t = time.perf_counter()
        qg = compute_distance(qf, gf, device=dev, out_device=None)
        _sync(dev)
        entry["distance_s"] = round(time.perf_counter() - t, 3)
        ids = [torch.as_tensor(v, device=dev) for v in (qp, gp, qc, gc)]
        t = time.perf_counter()
        cmc, mAP = evaluate_rank(qg, *ids)
        _sync(dev)
        entry["evaluate_rank_s"] = round(time.perf_counter() - t, 3)
        entry["rank1"], entry["mAP"] = round(float(cmc[0]) * 100, 2), round(float(mAP) * 100, 2)
        rec.flush()
        t = time.perf_counter()
        qq = compute_distance(qf, qf, device=dev, out_device=None)
        gg = compute_distance(gf, gf, device=dev, out_device=None)
        rr = re_rank(qg, qq, gg, device=dev)
        _sync(dev)
        entry["re_rank_s"] = round(time.perf_counter() - t, 3)
        entry["re_rank_inputs"] = "distances included"
        cmc, mAP = evaluate_rank(rr, *ids)
        entry["rerank_rank1"] = round(float(cmc[0]) * 100, 2)
        entry["rerank_mAP"] = round(float(mAP) * 100, 2)
        entry["peak_mem_gib"] = _peak_gib(dev)
        entry["peak_rss_gib"] = _rss_gib()
        rec.flush()
        del qf, gf, qg, qq, gg, rr
        if dev.type == "cuda":
            torch.cuda.empty_cache()


PART_FUNCS = {"tests": part_tests, "shakedown": part_shakedown, "throughput": part_throughput,
              "parity": part_parity, "eval": part_eval}


def _run_part_inline(a: argparse.Namespace) -> int:
    """Body of a part's own process: run it, write its JSON (status ok/failed, reason)."""
    rec = Recorder(Path(a.part_out))
    rec.flush()
    try:
        _inject_fault(a.run_part)
        PART_FUNCS[a.run_part](rec, a)
        rec.status = "ok"
    except BaseException as exc:  # noqa: BLE001 - recorded, then the orchestrator goes on
        import traceback

        rec.status, rec.reason = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        rec.figures["traceback"] = traceback.format_exc()[-3000:]
    rec.set("peak_rss_gib", _rss_gib())
    return 0 if rec.status == "ok" else 1


def _wait_for(marker: Path, deadline: float) -> None:
    """Wait for the data preparation (generated concurrently with parts 1–2)."""
    while not marker.exists():
        if time.time() > deadline:
            raise TimeoutError("the synthetic data set was not ready in time")
        time.sleep(0.2)
    msg = marker.read_text()
    if msg != "ok":
        raise RuntimeError(f"data preparation failed: {msg}")


def _prepare_data(a: argparse.Namespace) -> int:
    marker = Path(a.data_ready)
    try:
        t = time.perf_counter()
        ds = load_market_like(a, wait=False)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text("ok")
        os.replace(tmp, marker)
        print(f"synthetic data ready: {len(ds.train)} train, {len(ds.gallery)} gallery "
              f"({time.perf_counter() - t:.1f} s)")
        return 0
    except Exception as exc:  # noqa: BLE001 - the parts that need it report it
        marker.write_text(f"{type(exc).__name__}: {exc}")
        return 1


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------

def environment(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"requested_device": device, "torch": torch.__version__,
                            "cuda": torch.version.cuda, "python": platform.python_version(),
                            "hostname": platform.node(), "cpu_count": os.cpu_count(),
                            "cuda_available": torch.cuda.is_available()}
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cudnn"] = torch.backends.cudnn.version()
        info["device_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory
                                          / 2**30, 1)
    else:
        info["device_name"] = platform.processor() or platform.machine()
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, text=True,
                                            capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def run_check(device: str = "cuda", out: Path = Path("gpu_check"), parts: tuple[str, ...] = PARTS,
              tiny: bool = False, budget_s: float = 600.0,
              part_timeouts: dict[str, float] | None = None, specs: list[str] | None = None,
              data_root: Path | None = None) -> dict[str, Any]:
    """Run ``parts`` within ``budget_s`` seconds; write and return the summary dict."""
    t_start = time.time()
    out = Path(out).resolve()
    work = out / "parts"
    work.mkdir(parents=True, exist_ok=True)
    data_root = Path(data_root).resolve() if data_root else out / "data"
    part_timeouts = part_timeouts or {}
    summary: dict[str, Any] = {"schema": SCHEMA, "command": " ".join(sys.argv),
                               "started_at": _iso(t_start), "budget_s": budget_s, "tiny": tiny,
                               "environment": {}, "parts": {}}
    # The environment (torch import, device query) is read by a child running alongside the
    # parts, so its seconds do not come out of the first part's time.
    env_json = work / "environment.json"
    env_json.unlink(missing_ok=True)
    env_proc = subprocess.Popen([sys.executable, __file__, "--environment", str(env_json),
                                 "--device", device], cwd=REPO, env=_sub_env(),
                                stdout=subprocess.DEVNULL, stderr=open(work / "env.log", "wb"),
                                stdin=subprocess.DEVNULL, start_new_session=True)
    budget_parts = budget_s - min(5.0, 0.02 * budget_s)  # time left to write the summary
    common = ["--device", device, "--out", str(out), "--data-root", str(data_root)]
    common += ["--tiny"] if tiny else []
    for s in specs or []:
        common += ["--spec", s]
    # The Market-sized JPEGs take a minute or two to generate on one core: do it in the
    # background while the GPU runs parts 1–2 (they need little CPU).
    marker = work / "data.ready"
    marker.unlink(missing_ok=True)
    prep = None
    if {"throughput", "parity"} & set(parts):
        prep = subprocess.Popen([sys.executable, __file__, "--prepare-data", "--data-ready",
                                 str(marker), *common], cwd=REPO, env=_sub_env(),
                                stdout=open(work / "data.log", "wb"), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        for i, part in enumerate(parts):
            remaining = budget_parts - (time.time() - t_start)
            later = sum(SHARES[p] for p in parts[i:])
            timeout = remaining * SHARES[part] / later
            if part in part_timeouts:
                timeout = min(part_timeouts[part], remaining)
            entry: dict[str, Any] = {"status": "not_run", "timeout_s": round(timeout, 1),
                                     "seconds": 0.0, "reason": None, "figures": {}}
            summary["parts"][part] = entry
            if timeout < 1:
                entry["reason"] = "total time budget spent before this part"
                continue
            pj = work / f"{part}.json"
            pj.unlink(missing_ok=True)
            cmd = [sys.executable, __file__, "--run-part", part, "--part-out", str(pj),
                   "--deadline", str(time.time() + timeout), *common]
            if part in ("throughput", "parity"):
                cmd += ["--data-ready", str(marker)]
            rc, wall, rss = _run_child(cmd, timeout, work / f"{part}.log")
            got = json.loads(pj.read_text()) if pj.is_file() else {}
            entry.update(seconds=round(wall, 1), figures=got.get("figures", {}),
                         peak_rss_gib=rss)
            if rc is None:
                entry["status"] = "timeout"
                entry["reason"] = (f"killed after its {timeout:.0f} s timeout; figures are what "
                                   "it had recorded by then")
            elif got.get("status") == "ok" and rc == 0:
                entry["status"] = "ok"
            else:
                entry["status"] = "failed"
                entry["reason"] = got.get("reason") or (f"exit code {rc}; log tail: "
                                                        f"{_tail(work / f'{part}.log', 500)}")
            _write(summary, out, t_start)
    finally:
        # The data preparation is no longer needed; the environment child started with the
        # run and is long done unless the driver hangs: it gets at most ENV_GRACE_S more.
        for proc, grace in ((prep, 0.0), (env_proc, ENV_GRACE_S)):
            if proc is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, grace))
            if proc.poll() is None:
                _kill_group(proc)
            proc.wait()
    summary["environment"] = (json.loads(env_json.read_text()) if env_json.is_file()
                              else {"error": f"not read: {_tail(work / 'env.log', 300)}"})
    for p in PARTS:
        summary["parts"].setdefault(p, {"status": "not_run", "seconds": 0.0, "timeout_s": None,
                                        "reason": "not selected (--parts)", "figures": {}})
    _write(summary, out, t_start)
    return summary


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _write(summary: dict[str, Any], out: Path, t_start: float) -> None:
    summary["finished_at"] = _iso(time.time())
    summary["wall_s"] = round(time.time() - t_start, 1)
    for name, text in (("gpu_check.json", json.dumps(summary, indent=1, default=_jsonable)),
                       ("gpu_check.md", markdown(summary))):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out / name)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def markdown(s: dict[str, Any]) -> str:
    """The human summary of a run (what docs/benchmarks.md quotes)."""
    env = s["environment"]
    lines = [f"# reid-bench GPU check ({s['started_at']})", "",
             f"Device: **{env.get('device_name')}** (requested `{env.get('requested_device')}`), "
             f"torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn', '—')}, "
             f"{env.get('cpu_count')} CPUs, commit `{str(env.get('git_commit'))[:10]}`.",
             f"Wall {s.get('wall_s')} s of a {s['budget_s']:.0f} s budget"
             + (" — **--tiny: CPU dry path, not measurements**" if s.get("tiny") else "") + ".",
             "", "| part | status | seconds | reason |", "|---|---|---:|---|"]
    for name in PARTS:
        p = s["parts"].get(name, {})
        reason = (p.get("reason") or "").replace("\n", " ").replace("|", "/")[:160]
        lines.append(f"| {name} | {p.get('status')} | {_fmt(p.get('seconds'))} | {reason} |")
    parts = s["parts"]
    te = parts.get("tests", {}).get("figures", {})
    if te.get("counts"):
        lines += ["", f"Tests ({te.get('mode')}): {te['counts']}"
                  + (f"; failed: {', '.join(te['failed_tests'])}" if te.get("failed_tests")
                     else "")]
    sh = parts.get("shakedown", {}).get("figures", {}).get("tables", {})
    if sh:
        lines += ["", "## Shakedown", "", "| table | status | cells ok / planned | other | wall s "
                  "| peak memory | peak RSS GiB |", "|---|---|---:|---|---:|---:|---:|"]
        for t, e in sh.items():
            c = e.get("counts", {})
            other = ", ".join(f"{k} {v}" for k, v in c.items() if k != "ok")
            lines.append(f"| {t} | {e.get('status')} | {c.get('ok', 0)} / {e.get('planned', '?')}"
                         f" | {other} | {_fmt(e.get('wall_s'))} | {_fmt(e.get('peak_memory'))} | "
                         f"{_fmt(e.get('peak_rss_gib'))} |")
    tp = parts.get("throughput", {}).get("figures", {})
    if tp.get("runs"):
        lines += ["", "## Training throughput (train_stage)", "",
                  f"{tp.get('setup', {}).get('model')}, {tp.get('setup', {}).get('input')}, "
                  f"{_fmt(tp.get('setup', {}).get('flops_per_image'))} FLOPs per image "
                  "(forward + backward).", "",
                  "| setting | img/s | TFLOP/s | MFU | peak GiB | first epoch s | status |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for k, r in tp["runs"].items():
            lines.append(f"| {k} | {_fmt(r.get('img_per_s'))} | {_fmt(r.get('achieved_tflops'))}"
                         f" | {_fmt(r.get('mfu'))} | {_fmt(r.get('peak_mem_gib'))} | "
                         f"{_fmt(r.get('first_epoch_s'))} | {r.get('status')} "
                         f"{r.get('reason') or ''} |")
        fa = tp.get("fastest")
        if fa:
            lines.append(f"\nFastest: {fa['setting']} at {_fmt(fa['img_per_s'])} img/s "
                         f"(goal {_fmt(fa['goal_img_per_s'])} img/s on an H100/H200-class GPU; "
                         f"met: {fa['goal_met']}).")
        dp = tp.get("data_path", {})
        for w, r in dp.get("runs", {}).items():
            lines.append(f"\nData path, {w} worker(s): {_fmt(r['img_per_s'])} img/s "
                         f"(target {_fmt(dp.get('target_img_per_s'))}; sustains: "
                         f"{r['sustains_target']}).")
        if dp.get("why"):
            lines.append(f"\n{dp['why']}.")
    pa = parts.get("parity", {}).get("figures", {})
    if pa.get("runs"):
        lines += ["", "## Precision parity (IDE, Market-sized synthetic)", "",
                  "| run | rank-1 | mAP | final loss | wall s | status |", "|---|---:|---:|---:|---:|---|"]
        for k, r in pa["runs"].items():
            lines.append(f"| {k} | {_fmt(r.get('rank1'))} | {_fmt(r.get('mAP'))} | "
                         f"{_fmt(r.get('final_loss'))} | {_fmt(r.get('wall_s'))} | "
                         f"{r.get('status')} {r.get('reason') or ''} |")
        if pa.get("comparison"):
            lines.append(f"\nbf16+cl − fp32: {json.dumps(pa['comparison'])}")
    ev = parts.get("eval", {}).get("figures", {})
    rows = [(k, v) for k, v in ev.items() if isinstance(v, dict) and "queries" in v]
    if rows:
        lines += ["", "## Evaluation", "", "| problem | distance s | evaluate_rank s | re_rank s "
                  "| peak GiB |", "|---|---:|---:|---:|---:|"]
        for k, v in rows:
            lines.append(f"| {k}: {v['queries']:,} × {v['gallery']:,} × {v['dim']} | "
                         f"{_fmt(v.get('distance_s'))} | {_fmt(v.get('evaluate_rank_s'))} | "
                         f"{_fmt(v.get('re_rank_s'))} | {_fmt(v.get('peak_mem_gib'))} |")
    return "\n".join(lines) + "\n"


def _timeouts(items: list[str]) -> dict[str, float]:
    out = {}
    for it in items:
        name, _, sec = it.partition("=")
        if name not in PARTS or not sec:
            raise SystemExit(f"--part-timeout {it!r}: expected PART=SECONDS with PART one of "
                             f"{', '.join(PARTS)}")
        out[name] = float(sec)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: cuda)")
    ap.add_argument("--out", default="gpu_check", help="output folder (default: ./gpu_check)")
    ap.add_argument("--parts", default=",".join(PARTS),
                    help=f"comma-separated subset of {','.join(PARTS)} (default: all)")
    ap.add_argument("--tiny", action="store_true",
                    help="tiny sizes: the CPU dry path of CI (figures are not measurements)")
    ap.add_argument("--budget-s", type=float, default=600.0,
                    help="total wall-time budget in seconds, shared by the parts (default 600)")
    ap.add_argument("--part-timeout", action="append", default=[], metavar="PART=S",
                    help="override one part's timeout (repeatable)")
    ap.add_argument("--spec", dest="specs", action="append", default=None,
                    help="shakedown only these spec files (default: every papers/*/table*.yaml)")
    ap.add_argument("--data-root", default=None,
                    help="where the synthetic data sets are cached (default: <out>/data)")
    # internal: one part in its own process
    ap.add_argument("--run-part", choices=PARTS, help=argparse.SUPPRESS)
    ap.add_argument("--prepare-data", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--part-out", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data-ready", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--environment", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.environment:
        Path(a.environment).write_text(json.dumps(environment(a.device)))
        return 0
    if a.run_part or a.prepare_data:
        a.workdir = str(Path(a.out) / "parts")
        a.deadline = a.deadline or time.time() + a.budget_s
        return _prepare_data(a) if a.prepare_data else _run_part_inline(a)
    parts = tuple(p for p in a.parts.split(",") if p)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    s = run_check(a.device, Path(a.out), tuple(p for p in PARTS if p in parts), a.tiny,
                  a.budget_s, _timeouts(a.part_timeout), a.specs,
                  Path(a.data_root) if a.data_root else None)
    print((Path(a.out) / "gpu_check.md").read_text())
    return 0 if all(s["parts"][p]["status"] == "ok" for p in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
