"""reid_bench.core.atomic: a written file is the old one or the whole new one, never torn, and two
concurrent writers of one path (two report builds, two ranks) neither fail nor leave a
temporary file behind."""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

import pytest

from reid_bench.core import atomic

N_WRITES = 150
SIZE = 64 * 1024


def _payload(tag: str, i: int) -> str:
    # Every byte of one write says which writer and which write it is: a mix is visible.
    return f"{tag}{i:05d}" * (SIZE // 6)


def _writer(path: str, tag: str, start, errors) -> None:
    start.wait()
    try:
        for i in range(N_WRITES):
            atomic.write_text(Path(path), _payload(tag, i))
    except Exception as exc:  # noqa: BLE001 — reported to the parent
        errors.put(f"{tag}: {exc!r}")


def _check_whole(text: str) -> None:
    unit = text[:6]
    assert len(text) == len(unit) * (SIZE // 6) and text == unit * (SIZE // 6), "torn file"


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_concurrent_writers_never_fail_tear_or_leave_temps(tmp_path, kind):
    path = tmp_path / "index.html"
    if kind == "processes":
        ctx = mp.get_context("fork")
        start, errors = ctx.Event(), ctx.Queue()
        workers = [ctx.Process(target=_writer, args=(str(path), tag, start, errors))
                   for tag in ("A", "B")]
    else:
        import queue

        start, errors = threading.Event(), queue.Queue()
        workers = [threading.Thread(target=_writer, args=(str(path), tag, start, errors))
                   for tag in ("A", "B")]
    for w in workers:
        w.start()
    start.set()
    reads = 0
    while any(w.is_alive() for w in workers):
        if path.exists():
            _check_whole(path.read_text())  # a reader never sees a partial or mixed file
            reads += 1
    for w in workers:
        w.join()
    assert errors.empty(), errors.get()
    _check_whole(path.read_text())
    assert path.read_text()[:6] in (_payload("A", N_WRITES - 1)[:6],
                                    _payload("B", N_WRITES - 1)[:6])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html"], "temp files left"
    assert reads > 0


def test_temp_names_are_unique_per_process_and_call(tmp_path):
    a, b = atomic.temp_path(tmp_path / "x.csv"), atomic.temp_path(tmp_path / "x.csv")
    assert a != b and a.parent == tmp_path
    assert a.name.startswith(".x.csv.") and a.name.endswith(".tmp")
    assert atomic.stale_temps(tmp_path / "x.csv") == []
    a.write_text("left by a killed writer")
    assert atomic.stale_temps(tmp_path / "x.csv") == [a]


def test_a_failing_write_keeps_the_old_file_and_removes_its_temp(tmp_path):
    path = tmp_path / "model.pt"
    atomic.write_bytes(path, b"old")

    def half_then_crash(tmp: Path) -> None:
        tmp.write_bytes(b"ne")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic.save(path, half_then_crash)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_build_dir_publishes_whole_or_nothing(tmp_path):
    final = tmp_path / "cache"
    calls = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "a.txt").write_text("a")

    assert atomic.build_dir(final, build) == final and (final / "a.txt").read_text() == "a"
    atomic.build_dir(final, build)
    assert len(calls) == 1, "an existing folder is reused"

    def broken(tmp: Path) -> None:
        (tmp / "half.txt").write_text("x")
        raise OSError("interrupted")

    with pytest.raises(OSError, match="interrupted"):
        atomic.build_dir(tmp_path / "other", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    # replace=True rebuilds an existing folder (the artefact cache's --refresh).
    atomic.build_dir(final, lambda tmp: (tmp / "b.txt").write_text("b"), replace=True)
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
