"""A cell is finished only for its config AND its data (``finished.is_finished``), and the
runner, the launchers and ``status`` all apply that one rule; bad files fail a cell before its
first training step; a failed attempt never replaces an ok row (issue 28 items 1 and 7)."""

import itertools
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from toyspec import register_plugin, tiny_spec

from reid_bench.data import load_dataset
from reid_bench.data.check import BadFilesError, check_files
from reid_bench.run.launch import pending_cells
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.finished import DataFingerprints, cell_fingerprint, is_finished
from reid_bench.table.plan import plan
from reid_bench.table.status import table_status

register_plugin()

# ------------------------------------------------------------------ the rule itself

_STATUS = (*results.STATUSES, None)  # None: the cell has no row
_SAME = ("same", "other", None)  # the row's value vs the current one; None: unknown now


@pytest.mark.parametrize("status, chash, fp", list(itertools.product(_STATUS, _SAME, _SAME)))
def test_finished_needs_ok_same_config_and_same_data(status, chash, fp):
    row = None if status is None else {"status": status, "config_hash": "H",
                                       "dataset_fingerprint": "F"}
    current_hash = {"same": "H", "other": "H2", None: None}[chash]
    current_fp = {"same": "F", "other": "F2", None: None}[fp]
    want = status == "ok" and chash == "same" and fp == "same"
    assert is_finished(row, current_hash, current_fp) is want


def test_cell_fingerprint_changes_with_either_dataset():
    assert cell_fingerprint("a") == cell_fingerprint("a", None) == cell_fingerprint("a", "a") == "a"
    combos = {cell_fingerprint(e, t) for e, t in itertools.product("ab", "cd")}
    assert len(combos) == 4 and not combos & {"a", "b", "c", "d"}


# ------------------------------------------------------------------ a real-layout data root

def _market_root(tmp_path: Path, shared_data_root: Path) -> Path:
    """A copy of the synthetic dataset, in the Market-1501 layout, as the data root."""
    src = load_dataset("synthetic", shared_data_root).root
    root = tmp_path / "data"
    shutil.copytree(src, root / "Market-1501-v15.09.15")
    return root


def _train_files(root: Path) -> list[Path]:
    return sorted((root / "Market-1501-v15.09.15" / "bounding_box_train").glob("*.jpg"))


def _truncate_head(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:100])  # `head -c 100`: the header is cut


def _truncate_tail(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 40])  # the header survives, the end-of-image marker not


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _not_an_image(p: Path) -> None:
    p.write_bytes(b"<html>404 not found</html>" * 20)


def _delete_two(root: Path) -> None:
    for p in _train_files(root)[2:4]:
        p.unlink()


def _resize_one(root: Path) -> None:
    p = _train_files(root)[5]
    Image.new("RGB", (48, 96), (10, 200, 30)).save(p, format="JPEG")  # valid, other size


# What happens to the data between two runs, and whether the second run must re-run the cell
# (and then end ok or failed).
DATA_CHANGES = {
    "unchanged": (lambda root: None, None),
    "two images deleted": (_delete_two, "ok"),
    "one image replaced": (_resize_one, "ok"),
    "truncated (header cut)": (lambda root: _truncate_head(_train_files(root)[7]), "failed"),
    "truncated (tail cut)": (lambda root: _truncate_tail(_train_files(root)[7]), "failed"),
    "emptied": (lambda root: _empty(_train_files(root)[7]), "failed"),
    "not an image": (lambda root: _not_an_image(_train_files(root)[7]), "failed"),
}


def _setup(tmp_path, shared_data_root):
    spec = load_spec(tiny_spec(tmp_path, [{"name": "a"}], epochs=1))
    root = _market_root(tmp_path, shared_data_root)
    opts = RunOptions(results_dir=tmp_path / "r", data_root=root, subset=True, quiet=True)
    return spec, root, opts, plan(spec, variant="subset")


@pytest.mark.slow
@pytest.mark.parametrize("change", list(DATA_CHANGES))
@pytest.mark.parametrize("force", [False, True])
def test_changed_data_reruns_and_bad_data_never_replaces_an_ok_row(tmp_path, shared_data_root,
                                                                   change, force):
    mutate, outcome = DATA_CHANGES[change]
    spec, root, opts, cells = _setup(tmp_path, shared_data_root)
    first = Runner(spec, opts).run(cells)
    assert first.ok and first.done == [cells[0].id], first.failed
    before = results.read_results(results.table_csv(opts.results_dir, "demo", "table1")).iloc[0]
    mutate(root)
    # The launchers and status apply the same rule as the runner.
    pending = [c.id for c in pending_cells(spec, opts, cells)]
    state = table_status(spec, opts.results_dir, variant="subset",
                         fingerprints=DataFingerprints(root))[0].state
    assert pending == ([] if outcome is None else [cells[0].id])
    assert state == ("done" if outcome is None else "data_changed")

    opts.force = force
    runner = Runner(spec, opts)
    second = runner.run(cells)
    after = results.read_results(runner.csv).iloc[0]
    attempt = runner.cells_dir / f"{cells[0].id}.attempt.json"
    if outcome is None and not force:
        assert second.skipped == [cells[0].id] and after.equals(before)
    elif outcome == "failed":
        # Failed before training, naming the file; the ok row and its JSON stay.
        assert [s for _, s, _ in second.failed] == ["failed"]
        assert str(_train_files(root)[7]) in second.failed[0][2]
        assert "before training" in second.failed[0][2]
        assert after["status"] == "ok" and after["row_digest"] == before["row_digest"]
        rec = json.loads(attempt.read_text())
        assert rec["row"]["status"] == "failed" and "trained_artifact" not in rec
        assert json.loads((runner.cells_dir / f"{cells[0].id}.json").read_text())["row"][
            "status"] == "ok"
        st = table_status(spec, opts.results_dir, variant="subset",
                          fingerprints=DataFingerprints(root))[0]
        assert st.state == "data_changed" and "the last attempt" in st.note \
            and "ended failed" in st.note
    else:
        assert second.ok and second.done == [cells[0].id]
        assert after["status"] == "ok" and not attempt.exists()
        now = load_dataset("market1501", root).fingerprint
        assert after["dataset_fingerprint"] == now
        assert (now != before["dataset_fingerprint"]) is (outcome is not None)
        st = table_status(spec, opts.results_dir, variant="subset",
                          fingerprints=DataFingerprints(root))[0]
        assert st.state == "done" and not st.note


def test_bad_data_without_an_ok_row_records_a_failed_row(tmp_path, shared_data_root):
    spec, root, opts, cells = _setup(tmp_path, shared_data_root)
    _truncate_head(_train_files(root)[3])
    runner = Runner(spec, opts)
    assert not runner.run(cells).ok
    row = results.read_results(runner.csv).iloc[0]
    assert row["status"] == "failed" and str(_train_files(root)[3]) in row["error"]
    assert not (runner.cells_dir / f"{cells[0].id}.attempt.json").exists()
    assert not (opts.results_dir / "_artifacts").exists()  # nothing was trained


@pytest.mark.parametrize("corrupt", [_truncate_head, _truncate_tail, _empty, _not_an_image,
                                     Path.unlink])
def test_check_files_names_every_kind_of_bad_file(tmp_path, shared_data_root, corrupt):
    root = _market_root(tmp_path, shared_data_root)
    ds = load_dataset("market1501", root)
    check_files(ds, "market1501")  # the clean copy passes
    bad = sorted({s.path for s in ds.splits["gallery"]})[4]
    corrupt(Path(bad))
    with pytest.raises(BadFilesError) as e:
        check_files(ds, "market1501")
    assert bad in str(e.value) and "1 of" in str(e.value)


# ------------------------------------------------------------------ the ok row is kept

@pytest.mark.parametrize("old, new", list(itertools.product(_STATUS, results.STATUSES)))
@pytest.mark.parametrize("keep_ok", [False, True])
def test_only_keep_ok_refuses_replacing_ok_with_not_ok(tmp_path, old, new, keep_ok):
    p = tmp_path / "t.csv"
    base = {"paper": "p", "table": "table1", "row": "r", "dataset": "m", "seed": 0}
    if old is not None:
        results.upsert_row(p, base | {"status": old, "config_hash": "old"})
    written = results.upsert_row(p, base | {"status": new, "config_hash": "new"},
                                 keep_ok=keep_ok)
    refused = keep_ok and old == "ok" and new != "ok"
    assert written is not refused
    row = results.read_results(p).iloc[0]
    assert row["config_hash"] == ("old" if refused else "new")
