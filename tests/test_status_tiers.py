"""``status`` sees every run: each tier and variant in the results folder (``--tier``,
``--variant`` filters), interrupted cells with their last checkpoint and epoch (never
unpickled), a cell's state by ``finished.is_finished``, and a hint when only smoke cells exist
(issue 28 item 8)."""

import io
import itertools
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from toyspec import register_plugin, tiny_spec

from reid_bench.cli import main
from reid_bench.data import load_dataset
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.finished import DataFingerprints
from reid_bench.table.plan import config_hash, plan
from reid_bench.table.status import table_status
from reid_bench.table.workdirs import checkpoint_epoch

register_plugin()


def _status(*args):
    return CliRunner().invoke(main, ["status", *map(str, args)], catch_exceptions=False)


def _row(spec, tier="full", variant="", status="ok", **kw):
    return {"paper": spec.paper.id, "table": spec.table.id, "row": "a", "dataset": "market",
            "seed": 0, "tier": tier, "variant": variant, "status": status,
            "cell_id": results.cell_id("a", "market", 0, tier, None, variant)} | kw


@pytest.fixture
def spec(tmp_path):
    return load_spec(tiny_spec(tmp_path, [{"name": "a"}], epochs=1))


def test_smoke_only_results_are_shown_with_a_hint(tmp_path, spec, shared_data_root):
    res = tmp_path / "r"
    assert Runner(spec, RunOptions(results_dir=res, data_root=shared_data_root, smoke=True,
                                   quiet=True)).run(plan(spec, smoke=True)).ok
    out = _status(spec.path, "--results-dir", res, "--data-root", shared_data_root).output
    assert "demo/table1 [full]: 1 cell(s) — 0 done, 1 pending" in out
    assert "demo/table1 [smoke] (synthetic data): 1 cell(s) — 1 done, 0 pending" in out
    assert "it holds only smoke cells" in out and "`reid-bench status --tier smoke`" in out
    only = _status(spec.path, "--results-dir", res, "--data-root", shared_data_root,
                   "--tier", "smoke").output
    assert "[smoke]" in only and "[full]" not in only and "holds only" not in only


def test_every_tier_and_variant_is_listed_and_filtered(tmp_path, spec):
    res = tmp_path / "r"
    csv = results.table_csv(res, "demo", "table1")
    groups = [(t, v) for t, v in itertools.product(results.TIERS,
                                                   ["", "subset", "set:train.lr=0.02"])]
    for t, v in groups:
        results.upsert_row(csv, _row(spec, t, v, config_hash="x", dataset_fingerprint="y"))
    # Another spec copy's cells belong to that copy's status.
    results.upsert_row(csv, _row(spec, "full", "spec:0123", config_hash="x"))
    out = _status(spec.path, "--results-dir", res).output
    for t, v in groups:
        head = f"demo/table1 [{t}" + (f", variant {v}]" if v else "]")
        assert out.count(head) == 1, (head, out)
    assert "spec:0123" not in out and "holds only" not in out
    sub = _status(spec.path, "--results-dir", res, "--variant", "subset").output
    assert sub.count("demo/table1 [") == len(results.TIERS) and "variant subset]" in sub
    one = _status(spec.path, "--results-dir", res, "--variant", "canonical", "--tier",
                  "shakedown").output
    assert one.count("demo/table1 [") == 1 and "[shakedown]" in one
    bad = CliRunner().invoke(main, ["status", str(spec.path), "--results-dir", str(res),
                                    "--variant", "nope"])
    assert bad.exit_code == 2 and "no cells of variant 'nope'" in bad.output


def _save_ckpt(path: Path, epoch: int) -> None:
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(torch.randn(4, 3)).sum().backward()
    opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    # The layout train.py saves: model, optimiser, RNG, then the epoch and a history whose
    # entries also carry an "epoch" key.
    torch.save({"model": m.state_dict(), "optimizer": opt.state_dict(),
                "rng": torch.get_rng_state(), "epoch": epoch, "loader_rng": None, "step": 9,
                "history": [{"epoch": i, "loss": 1.0} for i in range(epoch)],
                "identity": {"k": "v"}}, path)


@pytest.mark.parametrize("tier", results.TIERS)
@pytest.mark.parametrize("epoch", [1, 7, 300])
def test_interrupted_cell_names_checkpoint_and_epoch(tmp_path, spec, tier, epoch):
    res = tmp_path / "r"
    cell = plan(spec, tier=tier)[0]
    cells_dir = results.cell_dir(res, "demo", "table1")
    _save_ckpt(cells_dir / f".work-{cell.id}" / "tiny.ckpt", epoch)
    st = table_status(spec, res, tier=tier)[0]
    assert st.state == "interrupted" and f"tiny.ckpt after epoch {epoch}" in st.note
    # The work folder alone makes the tier show up in plain `status`.
    out = _status(spec.path, "--results-dir", res).output
    assert f"interrupted  a × market (seed 0) — checkpoint tiny.ckpt after epoch {epoch}" in out


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path(_Boom.marker),))


def test_a_checkpoint_is_never_unpickled(tmp_path):
    _Boom.marker = str(tmp_path / "executed")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x/data.pkl", pickle.dumps({"evil": _Boom(), "epoch": 4}, protocol=2))
    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(buf.getvalue())
    assert checkpoint_epoch(ckpt) == 4 and not Path(_Boom.marker).exists()
    ckpt.write_bytes(b"not a zip")
    assert checkpoint_epoch(ckpt) is None


@pytest.mark.parametrize("status, chash, fp", list(itertools.product(
    results.STATUSES, ("same", "other"), ("same", "other", "data missing"))))
def test_state_follows_the_finished_rule(tmp_path, spec, shared_data_root, status, chash, fp):
    """A full-tier row: done only when ok with today's config hash and data fingerprint."""
    src = load_dataset("synthetic", shared_data_root).root
    root = tmp_path / "data"
    shutil.copytree(src, root / "Market-1501-v15.09.15")
    cell = plan(spec)[0]
    now = load_dataset("market1501", root).fingerprint
    res = tmp_path / "r"
    results.upsert_row(results.table_csv(res, "demo", "table1"), _row(
        spec, status=status, config_hash=config_hash(spec, cell) if chash == "same" else "h2",
        dataset_fingerprint=now if fp == "same" else "f2"))
    data = tmp_path / "elsewhere" if fp == "data missing" else root
    st = table_status(spec, res, fingerprints=DataFingerprints(data))[0]
    want = ("failed" if status != "ok" else "stale" if chash == "other" else
            "unverified" if fp == "data missing" else "data_changed" if fp == "other" else "done")
    assert st.state == want
