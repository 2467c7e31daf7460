"""What a user sees on the console (reid_bench.core.console): library log records reach the CLI's
echo, an echo error never reaches the training, ``--quiet`` drops per-epoch lines but keeps one
line per cell, and progress bars (epochs: test_train_loop; cells: here) show only on a terminal
and never under ``--quiet``."""

from __future__ import annotations

import logging
import sys

from reid_bench.core.console import bars_enabled, configure, progress
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.store.outcome import CellOutcome, Result
from reid_bench.table.plan import plan


def test_records_reach_echo_and_quiet_drops_training_lines():
    out, err = [], []
    restore = configure(out.append, err=err.append)
    try:
        logging.getLogger("reid_bench.run.runner").info("cell %d: ok", 1)
        logging.getLogger("reid_bench.engine.train").info("[x] epoch 1/1")
        logging.getLogger("reid_bench.models.fmn").info("[fmn] stage-1 GRN")
        logging.getLogger("reid_bench.engine.train").warning("not resuming")
        logging.getLogger("reid_bench.run.runner").debug("hidden")
        assert out == ["cell 1: ok", "[x] epoch 1/1", "[fmn] stage-1 GRN"]
        assert err == ["not resuming"]
        out.clear(), err.clear()
        restore_quiet = configure(out.append, err=err.append, quiet=True)  # replaces the handler
        logging.getLogger("reid_bench.run.runner").info("cell %d: ok", 2)
        logging.getLogger("reid_bench.engine.train").info("[x] epoch 1/1")
        logging.getLogger("reid_bench.models.fmn").info("[fmn] stage-1 GRN")
        logging.getLogger("reid_bench.engine.train").warning("not resuming")
        assert out == ["cell 2: ok"] and err == ["not resuming"]
        restore_quiet()
    finally:
        restore()
    out.clear()
    logging.getLogger("reid_bench").setLevel(logging.INFO)  # a record that would pass, if handled
    logging.getLogger("reid_bench.run.runner").info("after restore")
    assert out == [] and logging.getLogger("reid_bench.engine.train").level == logging.NOTSET


def test_an_echo_error_never_reaches_the_caller():
    def broken(msg):
        raise BrokenPipeError(32, "Broken pipe")

    restore = configure(broken)
    raise_exc, logging.raiseExceptions = logging.raiseExceptions, False  # no traceback noise
    try:
        logging.getLogger("reid_bench.engine.train").info("[x] epoch 1/1")  # must not raise
    finally:
        logging.raiseExceptions = raise_exc
        restore()


def test_progress_only_on_a_terminal_and_when_enabled(monkeypatch):
    items = [1, 2, 3]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not bars_enabled() and progress(items, desc="d", unit="u") is items
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert bars_enabled() and not bars_enabled(quiet=True)
    assert progress(items, desc="d", unit="u", enabled=False) is items
    bar = progress(items, desc="d", unit="u")
    assert bar is not items and list(bar) == items and bar.total == 3


def test_cells_bar_on_a_terminal_silenced_by_quiet(repo_root, tmp_path, capsys, monkeypatch,
                                                   caplog):
    caplog.set_level(logging.INFO, logger="reid_bench")
    spec = load_spec(repo_root / "papers" / "fmn" / "table5.yaml")
    cells = plan(spec, smoke=True)[:3]
    # The bar, not training: every cell "runs" instantly.
    monkeypatch.setattr(Runner, "cell_config", lambda self, cell: {"cell": cell.id})
    monkeypatch.setattr(Runner, "data_fingerprint", lambda self, config: None)
    monkeypatch.setattr(Runner, "run_cell", lambda self, cell, config, chash: CellOutcome(
        spec, cell, "ok", result=Result(metrics={"mAP": 1.0})))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    for quiet in (False, True):
        capsys.readouterr()
        caplog.clear()
        Runner(spec, RunOptions(results_dir=tmp_path / "r", smoke=True, quiet=quiet)).run(cells)
        err = capsys.readouterr().err
        if quiet:
            assert "cells:" not in err and "%|" not in err
        else:
            assert "cells: 100%" in err and "3/3" in err  # total and count of the table
        # one line per cell either way
        assert sum(": ok — mAP 1.00" in m for m in caplog.messages) == 3
