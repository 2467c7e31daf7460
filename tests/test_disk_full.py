"""A full disk (issue 27 item 5): the failed write names its file and says the disk is full;
the cell is recorded ``failed`` with that reason after the temporary file's space is released;
when even that record cannot be written the run stops with one message and the CSV untouched.

Two disks: a real 2 MiB tmpfs (root only; skipped with the reason otherwise) and injected
ENOSPC (``REID_BENCH_FAULT=enospc:<glob>``, reid_bench/core/faults.py) so CI without mount checks
the same logic."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from toyspec import register_plugin, tiny_spec

from reid_bench.cli import main
from reid_bench.core.errors import DiskFullError
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.plan import plan

register_plugin()

FREE_FOR_RECORDS = 40 * 1024  # > a failed cell's JSON + CSV, < a checkpoint of test_tiny


class Disk:
    """A results folder on a disk that can be made full: ``fill(leave)`` leaves ``leave``
    bytes free (tmpfs) or makes writes of matching files fail (injected)."""

    def __init__(self, root: Path, kind: str, monkeypatch):
        self.root, self.kind, self.mp = root, kind, monkeypatch

    def fill(self, leave: int, pattern: str = "*.ckpt") -> None:
        if self.kind == "injected":
            self.mp.setenv("REID_BENCH_FAULT", f"enospc:{pattern}")
            return
        (self.root / "filler").unlink(missing_ok=True)
        size = shutil.disk_usage(self.root).free - leave
        with open(self.root / "filler", "wb") as f:
            f.write(b"\0" * max(0, size))

    def free(self) -> int:
        return shutil.disk_usage(self.root).free


@pytest.fixture(params=["tmpfs", "injected"])
def disk(request, tmp_path, monkeypatch):
    monkeypatch.delenv("REID_BENCH_FAULT", raising=False)
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if request.param == "injected":
        yield Disk(mnt, "injected", monkeypatch)
        return
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the 'injected' variant checks the logic)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"mount not permitted here: {r.stderr.strip()}")
    try:
        yield Disk(mnt, "tmpfs", monkeypatch)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _leftovers(root: Path) -> list[Path]:
    """Temporary files and artefact build folders a failed write may have left."""
    return [p for p in root.rglob(".*") if p.name.endswith(".tmp")
            or (p.is_dir() and p.parent.name == "trained")]


def test_checkpoint_write_on_a_full_disk_is_a_failed_cell_naming_the_file(
        disk, tmp_path, shared_data_root):
    spec = load_spec(tiny_spec(tmp_path, [{"name": "a"}, {"name": "b"}], epochs=2))
    out = disk.root / "r"
    out.mkdir()
    disk.fill(FREE_FOR_RECORDS)
    before = disk.free()
    runner = Runner(spec, RunOptions(results_dir=out, data_root=shared_data_root, smoke=True,
                                     checkpoint_every=1, quiet=True))
    summary = runner.run(plan(spec, smoke=True))
    df = results.read_results(runner.csv).set_index("row")
    for row in ("a", "b"):  # the first failure does not stop the table
        assert df.loc[row, "status"] == "failed", df.loc[row, "error"]
        err = df.loc[row, "error"]
        assert err.startswith("disk full: could not write ") and "tiny.ckpt" in err, err
        assert "Free some space" in err
    assert len(summary.failed) == 2
    assert _leftovers(out) == []  # every temporary file and build folder removed
    if disk.kind == "tmpfs":  # the failed writes' space came back: only the records use it
        assert before - disk.free() < FREE_FOR_RECORDS


def test_when_even_the_record_cannot_be_written_the_run_stops_with_one_message(
        disk, tmp_path, shared_data_root):
    spec_path = tiny_spec(tmp_path, [{"name": "a"}, {"name": "b"}], epochs=1)
    out = disk.root / "r"
    args = ["run", str(spec_path), "--smoke", "--results-dir", str(out), "--data-root",
            str(shared_data_root), "--quiet", "--rows"]
    assert CliRunner().invoke(main, args + ["a"]).exit_code == 0
    csv = results.table_csv(out, "demo", "table1")
    kept = csv.read_bytes()
    disk.fill(0, pattern="*")
    res = CliRunner().invoke(main, args + ["b"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "disk full: could not write" in lines[0], res.output
    assert "Traceback" not in res.output
    assert csv.read_bytes() == kept  # untouched
    assert _leftovers(out) == []


def test_disk_full_error_names_path_and_free_space(tmp_path):
    from reid_bench.core import atomic

    os.environ["REID_BENCH_FAULT"] = "enospc:x.bin"
    try:
        with pytest.raises(DiskFullError, match=r"could not write .*x\.bin .*iB free"):
            atomic.write_bytes(tmp_path / "x.bin", b"123")
    finally:
        del os.environ["REID_BENCH_FAULT"]
    assert list(tmp_path.iterdir()) == []


def test_torch_save_stream_failure_is_disk_full(tmp_path):
    """``torch.save`` onto a full disk fails with ``RuntimeError: basic_ios::clear`` (the
    issue's message): it is read as a full disk too, and its temporary file is removed."""
    from reid_bench.core import atomic

    def write(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("basic_ios::clear: iostream error")

    with pytest.raises(DiskFullError, match="basic_ios"):
        atomic.save(tmp_path / "m.pt", write)
    assert list(tmp_path.iterdir()) == []
