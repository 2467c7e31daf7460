"""Install the peer libraries' evaluation code from PyPI into a temporary folder (never vendored).

``fastreid==1.4.0`` (wheel: fastreid/evaluation/rank_cylib/rank_cy.pyx, rerank.py) and
``torchreid==0.2.5`` (sdist: torchreid/reid/metrics/rank_cylib/rank_cy.pyx, rank.py,
torchreid/reid/utils/rerank.py) are downloaded with ``pip download --no-deps``; their Cython
rank modules are compiled in place with Cython (installed into the same folder). Peers are
loaded from their files only, so their heavy package imports (torchvision, ...) are not needed.

``prepare(root)`` returns ``{name: Peer}``; a peer that cannot be installed or built is
returned with ``error`` set so the benchmark can skip it with that message.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGES = {"fastreid": "fastreid==1.4.0", "torchreid": "torchreid==0.2.5"}
FILES = {
    "fastreid": {"rank_cy": "fastreid/evaluation/rank_cylib/rank_cy.pyx",
                 "rank_py": "fastreid/evaluation/rank.py",
                 "rerank": "fastreid/evaluation/rerank.py"},
    "torchreid": {"rank_cy": "torchreid/reid/metrics/rank_cylib/rank_cy.pyx",
                  "rank_py": "torchreid/reid/metrics/rank.py",
                  "rerank": "torchreid/reid/utils/rerank.py"},
}


@dataclass
class Peer:
    name: str
    root: Path | None = None
    rank_cy_dir: Path | None = None  # folder holding the compiled rank_cy extension
    rank_cy_error: str | None = None
    rank_py_file: Path | None = None
    rerank_file: Path | None = None
    error: str | None = None


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> None:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def _extract(archive: Path, dest: Path) -> None:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    else:
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(dest, filter="data")  # no links, devices or paths out of dest
                return
            # Python < 3.10.12 has no extraction filters: refuse what the "data" filter would
            bad = [m.name for m in t.getmembers() if not (m.isfile() or m.isdir())
                   or Path(m.name).is_absolute() or ".." in Path(m.name).parts]
            if bad:
                raise RuntimeError(f"{archive.name}: unsafe members {bad[:5]}")
            t.extractall(dest)


def _publish(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` folder to ``final``; a concurrent session that got there
    first wins and ``tmp`` is dropped (so a half-written download is never reused)."""
    try:
        tmp.rename(final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_source(name: str, root: str | os.PathLike) -> Path:
    """Download ``PACKAGES[name]`` from PyPI with ``pip download --no-deps`` into ``root`` and
    extract it there (both reused when already complete); returns the folder holding the
    package's top-level module (the wheel's root, or the sdist's single top folder).
    Raises ``RuntimeError`` with pip's output when the download fails."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    req = PACKAGES[name]
    dl, src = root / f"{name}_dl", root / f"{name}_src"
    for d in (dl, src):  # empty: left by an interrupted run of an older version of this file
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    if not dl.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}_dl-", dir=root))
        try:
            _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", req,
                  "-d", str(tmp)], root)
            _publish(tmp, dl)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    archive = next(dl.iterdir())
    if not src.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}_src-", dir=root))
        try:
            _extract(archive, tmp)
            _publish(tmp, src)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if archive.suffix == ".whl":
        return src
    subdirs = [p for p in src.iterdir() if p.is_dir()]
    return subdirs[0] if len(subdirs) == 1 else src


def _ensure_cython(root: Path) -> Path:
    tools = root / "_build_tools"
    if not (tools / "Cython").exists():
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(tools), "cython"], root)
    return tools


def _build_rank_cy(pyx: Path, tools: Path) -> Path:
    """Compile rank_cy.pyx in its folder with Cython + the system C compiler."""
    build = pyx.parent
    if list(build.glob("rank_cy*.so")):
        return build
    import numpy

    setup = build / "_bench_setup.py"
    setup.write_text(
        "from setuptools import setup, Extension\n"
        "from Cython.Build import cythonize\n"
        f"setup(ext_modules=cythonize([Extension('rank_cy', ['rank_cy.pyx'], include_dirs=[{numpy.get_include()!r}])],"
        " language_level=3, quiet=True), script_args=['build_ext', '--inplace'])\n")
    env = dict(os.environ, PYTHONPATH=str(tools))
    _run([sys.executable, str(setup)], build, env)
    if not list(build.glob("rank_cy*.so")):
        raise RuntimeError(f"no rank_cy extension built in {build}")
    return build


def prepare(root: str | os.PathLike) -> dict[str, Peer]:
    """Download, extract and build every peer under ``root`` (reused when already there)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    peers: dict[str, Peer] = {}
    tools = None
    for name, req in PACKAGES.items():
        peer = Peer(name)
        try:
            base = fetch_source(name, root)
            peer.root = base
            files = {k: base / v for k, v in FILES[name].items()}
            missing = [str(v) for k, v in files.items() if k != "rank_cy" and not v.exists()]
            if missing:
                raise RuntimeError(f"{req} does not ship {', '.join(missing)}")
            peer.rerank_file = files["rerank"]
            peer.rank_py_file = files["rank_py"]
            if not files["rank_cy"].exists():
                peer.rank_cy_error = (f"{req} on PyPI does not ship {FILES[name]['rank_cy']} "
                                      "(only rank.py and rerank.py): no Cython path to build")
            else:
                try:
                    tools = tools or _ensure_cython(root)
                    peer.rank_cy_dir = _build_rank_cy(files["rank_cy"], tools)
                except Exception as e:  # noqa: BLE001
                    peer.rank_cy_error = f"building {req} rank_cy.pyx failed: {str(e)[:500]}"
        except Exception as e:  # noqa: BLE001 - any failure means: skip this peer, say why
            peer.error = f"peer {req} unavailable: {type(e).__name__}: {str(e)[:500]}"
        peers[name] = peer
    return peers


def load_rank_cy(peer: Peer):
    """The peer's compiled ``evaluate_cy`` function."""
    sys.path.insert(0, str(peer.rank_cy_dir))
    try:
        spec = importlib.util.find_spec("rank_cy")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(peer.rank_cy_dir))
    return mod.evaluate_cy


def load_rerank(peer: Peer):
    """The peer's ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)``."""
    spec = importlib.util.spec_from_file_location(f"_peer_rerank_{peer.name}", peer.rerank_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.re_ranking


def load_rank_py(peer: Peer):
    """The peer's pure-Python ``evaluate_rank``/``evaluate_py`` (loaded from its file)."""
    spec = importlib.util.spec_from_file_location(f"_peer_rank_{peer.name}", peer.rank_py_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, "eval_market1501", None) or mod.eval_market1501_py


if __name__ == "__main__":
    for p in prepare(sys.argv[1] if len(sys.argv) > 1 else "/tmp/reid_bench_peers").values():
        print(p.name, p.error or f"ok: rank_cy={p.rank_cy_dir or p.rank_cy_error} rerank={p.rerank_file}")
