"""Orphans of killed runs are removed when a run starts, never a live runner's; a cell another
runner is running is counted apart from finished ones (issue 27 item 7, in part)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from filelock import FileLock
from toyspec import cli_cmd, register_plugin, tiny_spec

from reid_bench.cli import main
from reid_bench.core import atomic, orphans
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import lease, results
from reid_bench.table.plan import plan

register_plugin()


@pytest.fixture(scope="module")
def pids():
    """(a dead pid, a live pid that is not this process)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield dead.pid, live.pid
    live.kill()
    live.wait()


def _plant(root: Path, where: str, kind: str, pid: int, age_s: float) -> Path:
    """One orphan candidate of ``kind`` in ``where`` (table folder, cell work folder, artefact
    folder) written by ``pid``, ``age_s`` seconds old."""
    folder = {"table": root / "demo" / "table1",
              "work": root / "demo" / "table1" / ".work-a__market__s0__smoke",
              "artefact": root / "_artifacts" / "trained"}[where]
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        real = atomic.temp_path(folder / "x.json")
        path = real.with_name(real.name.replace(f".{os.getpid()}.", f".{pid}."))
        path.write_text("partial")
    else:
        path = folder / f".{'0123456789abcdef'}.{pid}.ab_cd123"
        path.mkdir()
        (path / "model.pt").write_bytes(b"partial")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


# Build folders exist beside artefacts only.
CASES = [c for c in itertools.product(["table", "work", "artefact"], ["file", "dir"],
                                      ["dead", "live", "self"], [3600.0, 60.0, -5.0],
                                      [False, True]) if c[1] == "file" or c[0] == "artefact"]


@pytest.mark.parametrize("where,kind,who,age,locked", CASES)
def test_only_orphans_of_dead_processes_older_than_the_run_go(tmp_path, pids, where, kind,
                                                              who, age, locked):
    pid = {"dead": pids[0], "live": pids[1], "self": os.getpid()}[who]
    root = tmp_path / "r"
    path = _plant(root, where, kind, pid, age)
    held = None
    if locked:  # the guarding lock: a cell's lease, an artefact's build lock
        if where == "work":
            held = lease.take(root / "demo" / "table1", "a__market__s0__smoke")
        elif where == "artefact":
            held = FileLock(str(path.parent / "0123456789abcdef.lock"))
            held.acquire()
    try:
        started = time.time() - 1.0
        removed = orphans.sweep(root, started, busy=lease.guard_held)
    finally:
        if held is not None:
            held.release()
    guarded = where == "work" or (where == "artefact" and kind == "dir")
    gone = (who == "dead" and age > 1.0 and not (locked and guarded)
            and (guarded or age >= 600))
    assert (path in removed) == gone and path.exists() != gone


def test_sweep_runs_at_start_and_spares_the_rest(tmp_path, pids, shared_data_root):
    spec = load_spec(tiny_spec(tmp_path, [{"name": "a"}], epochs=1))
    out = tmp_path / "r"
    orphan = _plant(out, "artefact", "dir", pids[0], 3600)
    tmp = _plant(out, "table", "file", pids[0], 3600)
    live = _plant(out, "table", "file", pids[1], 3600)
    summary = Runner(spec, RunOptions(results_dir=out, data_root=shared_data_root,
                                      smoke=True, quiet=True)).run(plan(spec, smoke=True))
    assert summary.ok and not orphan.exists() and not tmp.exists() and live.exists()


def test_a_cell_another_runner_holds_is_not_already_done(tmp_path, shared_data_root):
    spec_path = tiny_spec(tmp_path, [{"name": "a"}, {"name": "b", "params": {"sleep": 1e-4}}],
                          epochs=1)
    spec = load_spec(spec_path)
    out = tmp_path / "r"
    cells = results.cell_dir(out, "demo", "table1")
    held = lease.take(cells, plan(spec, smoke=True)[0].id)  # "another runner" runs row a
    try:
        res = CliRunner().invoke(main, cli_cmd(spec_path, out, shared_data_root, "--quiet")[3:])
    finally:
        held.release()
    assert res.exit_code == 0, res.output
    assert "being run by another runner, skipped" in res.output
    assert "1 done, 0 already done, 1 being run by another runner, 0 not ok" in res.output
