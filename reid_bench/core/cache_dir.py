"""Where derived files go: the cache folder, never the data root.

Data roots are often read-only shared mounts (``/datasets``), so anything the suite derives from
a dataset (CUHK03's PNGs extracted from ``cuhk-03.mat``) or generates (the synthetic stand-in)
is written under the cache folder instead: ``--cache-dir``, else ``$REID_BENCH_CACHE``, else the
user cache directory (``$XDG_CACHE_HOME/reid-bench``, else ``~/.cache/reid-bench``; the same
rule platformdirs applies on Linux, without the dependency).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "REID_BENCH_CACHE"


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` if given, else ``$REID_BENCH_CACHE``, else ``$XDG_CACHE_HOME/reid-bench``,
    else ``~/.cache/reid-bench`` (absolute; not created here)."""
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "reid-bench").resolve()


def use_cache_dir(cache_dir: str | os.PathLike | None) -> None:
    """Make ``--cache-dir`` the cache folder of this process and of the processes it starts
    (torchrun workers, Slurm tasks inherit the environment)."""
    if cache_dir:
        os.environ[ENV] = str(Path(cache_dir).expanduser().resolve())
