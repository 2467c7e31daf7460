"""The test steps CI runs (``.ci/test-steps``, called by ``.ci/run``): the default suite, then
the slow tests; both counted, "no tests collected" (pytest's exit 5) a failure in either. The
default ``pytest`` deselects ``slow`` and ``gpu``; the README's test command and ``nox -s slow``
run the slow step too."""

from __future__ import annotations

import shlex
import subprocess

import pytest
import tomllib
from _pytest.mark.expression import Expression
from conftest import ROOT

STEPS = ROOT / ".ci" / "test-steps"


def _stub_python(tmp_path, rcs: list[int]):
    """A stand-in for the venv's python: logs its arguments, exits with the next of ``rcs``."""
    log, count = tmp_path / "calls.log", tmp_path / "n"
    count.write_text("0")
    stub = tmp_path / "python"
    codes = " ".join(map(str, rcs))
    stub.write_text("#!/usr/bin/env bash\n"
                    f'n=$(cat {count}); echo $((n + 1)) > {count}\n'
                    f'echo "$*" >> {log}\n'
                    f"codes=({codes}); exit ${{codes[$n]}}\n")
    stub.chmod(0o755)
    return stub, log


@pytest.mark.parametrize("rcs", [(a, b) for a in (0, 1, 5) for b in (0, 1, 5)])
def test_both_steps_run_and_count(tmp_path, rcs):
    stub, log = _stub_python(tmp_path, list(rcs))
    out = subprocess.run(["bash", str(STEPS), str(stub)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    calls = log.read_text().splitlines()
    assert calls == ["-m pytest -q", "-m pytest -q -m slow"]  # the slow step always runs
    assert (out.returncode == 0) == (rcs == (0, 0)), (rcs, out.returncode, out.stderr)
    if 5 in rcs:
        assert "collected no tests" in out.stderr


def test_ci_run_ends_with_the_test_steps():
    last = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip()][-1]
    assert last == "exec bash .ci/test-steps .venv/bin/python"


def _selected(expr: str, marks: set[str]) -> bool:
    return Expression.compile(expr).evaluate(lambda name, **kw: name in marks)


def test_default_run_deselects_slow_and_gpu_and_the_slow_step_selects_slow():
    addopts = shlex.split(tomllib.loads((ROOT / "pyproject.toml").read_text())
                          ["tool"]["pytest"]["ini_options"]["addopts"])
    default = addopts[addopts.index("-m") + 1]
    assert not _selected(default, {"slow"}) and not _selected(default, {"gpu"})
    assert _selected(default, set()) and _selected(default, {"browser"})
    # The README's test command (its second command) runs both steps, as does nox.
    command = (ROOT / "README.md").read_text().splitlines()[3].strip()
    assert command == ".venv/bin/python -m pytest && .venv/bin/python -m pytest -m slow"
    nox = (ROOT / "noxfile.py").read_text()
    assert 'session.run("pytest", "-q", "-m", "slow", *session.posargs)' in nox
    assert '"slow"]' in nox  # among the default sessions
