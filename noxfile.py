"""nox sessions: tests, slow, lint, smoke (the README's main command), bench, gpu, browser, minimum.

Every session installs with ``constraints.txt`` so torch/torchvision are the builds that lie on
our machines' disk (any other version is a multi-GB download).
"""

import re
from pathlib import Path

import nox
import tomllib

nox.options.sessions = ["lint", "tests", "slow"]
nox.options.reuse_existing_virtualenvs = True
PY = "3.11"


def _install(session: nox.Session) -> None:
    session.install("-c", "constraints.txt", "-e", ".[dev]")


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """The default test suite (``slow`` and ``gpu`` deselected by pyproject's addopts); with
    ``nox -s slow`` it is the README's test command."""
    _install(session)
    session.run("pytest", "-q", *session.posargs)


@nox.session(python=PY)
def slow(session: nox.Session) -> None:
    """The slow tests the default suite deselects (``-m slow``: end-to-end trainings, kills
    and resumes, the CPU shakedown of every method); .ci/run runs them after the suite."""
    _install(session)
    session.run("pytest", "-q", "-m", "slow", *session.posargs)


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "reid_bench", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PY)
def smoke(session: nox.Session) -> None:
    """The README's main command: a whole table on the embedded synthetic dataset, then the
    report."""
    _install(session)
    session.run("reid-bench", "run", "papers/fmn/table5.yaml", "--smoke")
    session.run("reid-bench", "report")


@nox.session(python=PY)
def bench(session: nox.Session) -> None:
    """pytest-benchmark suites (ours beside the peers where they install)."""
    _install(session)
    session.run("pytest", "benchmarks", "--benchmark-only", "--benchmark-columns=min,mean,max",
                "-p", "no:cacheprovider", "-s", *session.posargs)


@nox.session(python=PY)
def gpu(session: nox.Session) -> None:
    """The prepared GPU check (benchmarks/gpu_check.py): CUDA tests, every table's shakedown,
    training throughput, precision parity and evaluation speed within a 10-minute budget;
    writes gpu_check/gpu_check.json, gpu_check.md and the HTML report. Fails fast without a
    GPU. Arguments after ``--`` go to the script, e.g.
    ``nox -s gpu -- --parts shakedown --budget-s 5400`` (the nightly shakedown)."""
    _install(session)
    session.run("python", "-c",
                "import sys, torch; sys.exit(0 if torch.cuda.is_available() else "
                "'nox -s gpu needs a CUDA GPU: torch.cuda.is_available() is False')")
    session.run("python", "benchmarks/gpu_check.py", "--device", "cuda", *session.posargs)


@nox.session(python=PY)
def browser(session: nox.Session) -> None:
    """Render the report in headless Chromium and check it (needs Debian's chromium)."""
    _install(session)
    session.run("pytest", "-q", "-m", "browser", "tests", *session.posargs)


# Heavy wheels stay at constraints.txt in the `minimum` session (multi-GB downloads); their
# lower bounds in pyproject.toml are the versions the suite was run with.
HEAVY = {"torch", "torchvision"}


def lower_bounds() -> list[str]:
    """``name==X`` for every runtime dependency of pyproject.toml with a ``>=X`` bound, except
    ``HEAVY``: the lowest versions the project claims to support."""
    deps = tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]
    pins = []
    for dep in deps:
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)", dep)
        if m and m.group(1).lower() not in HEAVY:
            pins.append(f"{m.group(1)}=={m.group(2)}")
    return pins


@nox.session(python=PY)
def minimum(session: nox.Session) -> None:
    """The suite on the lowest versions pyproject.toml allows (timm, numpy, pandas, pydantic,
    click, jinja2, matplotlib and the other light dependencies), torch/torchvision from
    constraints.txt. Every lower bound must pass here."""
    session.install("-c", "constraints.txt", "-e", ".[dev]", *lower_bounds())
    session.run("python", "-m", "pip", "list")
    session.run("pytest", "-q", *session.posargs)
