"""``RunOptions.artifacts_dir`` / ``run --artifacts-dir``: trained models live under a root of
their own (default ``RESULTS_DIR/_artifacts``), so runs into different results folders that
share it train once; shakedown trainings stay apart under ``<root>/_shakedown``."""

from __future__ import annotations

from pathlib import Path

from toyspec import register_plugin, tiny_spec

from reid_bench.run.launch import options_from_dict, options_to_dict
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.plan import plan


def _fits(marker: Path) -> int:
    return sum(ln.startswith("fit ") for ln in marker.read_text().splitlines()) \
        if marker.is_file() else 0


def test_two_results_folders_sharing_an_artifact_root_train_once(tmp_path, shared_data_root):
    register_plugin()
    marker = tmp_path / "marker"
    spec = load_spec(tiny_spec(tmp_path, [{"name": "a", "params": {"marker": str(marker)}}],
                               epochs=1))
    shared = tmp_path / "models"
    for n, res in enumerate((tmp_path / "r1", tmp_path / "r2"), start=1):
        runner = Runner(spec, RunOptions(results_dir=res, data_root=shared_data_root,
                                         artifacts_dir=shared, smoke=True, quiet=True))
        assert runner.run(plan(spec, smoke=True)).ok
        assert results.read_results(runner.csv).iloc[0]["status"] == "ok"
        assert _fits(marker) == 1, n  # the second folder's cell loaded the shared model
        assert not (res / "_artifacts").exists()
    assert any(shared.rglob("model.pt"))


def test_the_cache_roots_follow_the_option(tmp_path):
    spec = load_spec(tiny_spec(tmp_path, [{"name": "a"}]))
    from reid_bench.table.shakedown import ShakedownOptions

    for root, shake, want in [(None, None, tmp_path / "r" / "_artifacts"),
                              (tmp_path / "m", None, tmp_path / "m"),
                              (None, ShakedownOptions(), tmp_path / "r" / "_artifacts" /
                               "_shakedown"),
                              (tmp_path / "m", ShakedownOptions(), tmp_path / "m" / "_shakedown")]:
        runner = Runner(spec, RunOptions(results_dir=tmp_path / "r", artifacts_dir=root,
                                         shakedown=shake))
        assert Path(runner.cache.root) == want, (root, shake)
        assert runner.cache.refresh == (shake is not None)


def test_the_option_reaches_workers_and_the_cli(tmp_path, monkeypatch):
    opts = RunOptions(results_dir=tmp_path / "r", artifacts_dir=tmp_path / "m")
    assert options_from_dict(options_to_dict(opts)).artifacts_dir == tmp_path / "m"
    assert options_from_dict(options_to_dict(RunOptions())).artifacts_dir is None
    from click.testing import CliRunner

    from reid_bench.cli import main
    from reid_bench.run.runner import RunSummary

    seen = []
    monkeypatch.setattr(Runner, "run", lambda self, cells: seen.append(self.opts) or
                        RunSummary())
    spec = tiny_spec(tmp_path, [{"name": "a"}])
    out = CliRunner().invoke(main, ["run", str(spec), "--results-dir", str(tmp_path / "r"),
                              "--artifacts-dir", str(tmp_path / "m"), "--device", "cpu"])
    assert seen, out.output
    assert seen[0].artifacts_dir == tmp_path / "m"


def test_verify_finds_the_models_under_the_runs_artifact_root(tmp_path, shared_data_root):
    """A results folder trained with --artifacts-dir verifies (and re-evaluates) when verify is
    given the same folder; without it, its models are missing (strict), never silently
    passed; a relocated folder must stay inside the root it is given."""
    from click.testing import CliRunner

    from reid_bench.cli import main
    from reid_bench.run.verify import artefact_folder

    register_plugin()
    spec_path = tiny_spec(tmp_path, [{"name": "a"}], epochs=1)
    spec = load_spec(spec_path)
    res, shared = tmp_path / "r", tmp_path / "models"
    assert Runner(spec, RunOptions(results_dir=res, data_root=shared_data_root,
                                   artifacts_dir=shared, smoke=True, quiet=True)
                  ).run(plan(spec, smoke=True)).ok
    ok = CliRunner().invoke(main, ["verify", str(res), "--artifacts-dir", str(shared),
                                   "--reevaluate", "--specs", str(spec_path),
                                   "--data-root", str(shared_data_root)])
    assert ok.exit_code == 0, ok.output
    assert "1 of 1 row(s) verified, numbers re-evaluated" in ok.output
    missing = CliRunner().invoke(main, ["verify", str(res)])
    assert missing.exit_code == 1 and "no stored model" in missing.output, missing.output
    # The stored path's tail is all that is kept: no escape from the given root.
    assert artefact_folder({"trained_artifact": "/x/trained/../../etc"}, res, shared) is None
    assert artefact_folder({"trained_artifact": "/x/_shakedown/trained/h"}, res, shared) == \
        shared / "_shakedown" / "trained" / "h"
