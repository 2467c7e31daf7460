"""Where a weight set's file is, and how it gets there.

Lookup order for backbone ``name`` with ``pretrained: imagenet``:

1. an explicit override: ``reid-bench run --weights name=PATH`` (``use_overrides``);
2. ``$REID_BENCH_WEIGHTS_DIR/<name>.safetensors``, ``<name>.pth`` or the library's own file name
   (e.g. ``resnet50-0676ba61.pth``);
3. the libraries' normal caches: torch hub (``$TORCH_HOME/hub/checkpoints``; timm's
   ``resnet50.tv_in1k`` is the same file as torchvision's ResNet-50 ImageNet weights), the
   Hugging Face cache timm downloads into, and ours for converted CaffeNet: ``<cache dir>/weights``
   (``reid_bench.core.cache_dir``: ``--cache-dir``, else ``$REID_BENCH_CACHE``, else
   ``~/.cache/reid-bench``), then, for this release only, the old ``~/.cache/reid_bench/weights``
   (read, never written; a file found there logs a warning saying where to move it);
4. a download through timm / torchvision, if the network is reachable.

Offline (``HF_HUB_OFFLINE``/``REID_BENCH_OFFLINE`` set, or the download host unreachable within a
few seconds) a missing file is one ``WeightsError`` line naming the fixes, not a minute of
retries.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..core.cache_dir import resolve_cache_dir
from ..core.errors import ReidBenchError
from ..core.hashing import file_digest
from ..core.scoped import Scoped
from . import registry

log = logging.getLogger(__name__)

ENV_DIR = "REID_BENCH_WEIGHTS_DIR"
_overrides: Scoped[dict[str, str] | None] = Scoped("weights_overrides", None)


class WeightsError(ReidBenchError):
    """Pretrained weights are missing, unreachable or do not fit the network."""


@dataclass(frozen=True)
class Located:
    """A weights file and how it was found (``how``: override, weights dir, cache name)."""

    name: str
    path: Path
    how: str

    @property
    def source(self) -> str:
        """One-line provenance, e.g. ``resnet50: timm resnet50.tv_in1k (torch hub cache)``."""
        ws = registry.get(self.name)
        what = ("file" if self.how in ("--weights", ENV_DIR, "recipe path")
                else f"{ws.library} {ws.tag}")
        return f"{self.name}: {what} ({self.how}) {self.path}"


@contextlib.contextmanager
def use_overrides(overrides: dict[str, str] | None) -> Iterator[None]:
    """Within the block, backbone ``name`` with ImageNet weights loads ``overrides[name]``."""
    with _overrides.use(dict(overrides or {})):
        yield


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["resnet50=/x.pth", ...]`` → ``{"resnet50": "/x.pth"}`` (``core.keyvalue``, the
    parser of every KEY=VALUE option); unknown names and missing files are errors that name
    the allowed values."""
    from ..core.keyvalue import KeyValueError, parse_pairs

    try:
        pairs = parse_pairs(items, option="--weights", example="resnet50=/data/resnet50.pth",
                            allowed=registry.names())
    except KeyValueError as exc:
        raise WeightsError(str(exc)) from None
    out: dict[str, str] = {}
    for name, path in pairs.items():
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError(f"--weights {name}={path}: no such file")
        out[name] = str(p.resolve())
    return out


OWN_CACHE = "reid-bench cache"
OLD_CACHE = "old weights folder"


def own_cache_dir() -> Path:
    """Where ``weights convert`` writes and runs look (CaffeNet has no library cache):
    ``<cache dir>/weights``, the cache folder of ``core.cache_dir.resolve_cache_dir``."""
    return resolve_cache_dir() / "weights"


def old_cache_dir() -> Path:
    """The folder releases up to 0.1.0 wrote converted weights to (``$XDG_CACHE_HOME`` or
    ``~/.cache``, then ``reid_bench/weights``; it ignored ``--cache-dir``). Read, never written,
    for one release so that a converted CaffeNet is not lost; to be dropped after 0.2."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "reid_bench" / "weights"


@functools.cache
def _warn_old_cache(path: Path) -> None:
    """Once per file and process: the file was found in the old folder; say where it belongs."""
    new = own_cache_dir()
    log.warning("%s is in the old weights folder %s, read for this release only: move it to %s "
                "(mkdir -p %s && mv %s %s)", path.name, path.parent, new, shlex.quote(str(new)),
                shlex.quote(str(path)), shlex.quote(f"{new}/"))


def _torch_hub_file(file: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / file


def _hf_cached(tag: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        return None
    cfg = registry._timm_cfg(tag)
    if not cfg.hf_hub_id:
        return None
    for fname in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(cfg.hf_hub_id, fname)
        if isinstance(hit, str):
            return Path(hit)
    return None


def candidates(name: str) -> list[tuple[str, Path]]:
    """Every place (``how``, path) the weights of ``name`` may be, in lookup order, whether or
    not the file is there (``weights list`` shows them)."""
    ws = registry.get(name)
    out: list[tuple[str, Path]] = []
    over = _overrides.get() or {}
    if name in over:
        out.append(("--weights", Path(over[name])))
    d = os.environ.get(ENV_DIR)
    if d:
        out += [(ENV_DIR, Path(d).expanduser() / f) for f in ws.file_names]
    if ws.library_file:
        out.append(("torch hub cache", _torch_hub_file(ws.library_file)))
    if ws.library == "timm":
        hf = _hf_cached(ws.tag)
        if hf is None:  # where timm would put it (for `weights list`)
            try:
                from huggingface_hub.constants import HF_HUB_CACHE
            except ImportError:  # pragma: no cover - timm depends on huggingface_hub
                HF_HUB_CACHE = "~/.cache/huggingface/hub"
            repo = registry._timm_cfg(ws.tag).hf_hub_id or ws.tag
            hf = Path(HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))
        out.append(("Hugging Face cache", hf))
    if ws.library == "bvlc":
        own, old = own_cache_dir(), old_cache_dir()
        out.append((OWN_CACHE, own / f"{name}.safetensors"))
        if old != own:
            out.append((OLD_CACHE, old / f"{name}.safetensors"))
    return out


def locate(name: str) -> Located | None:
    """The first existing file for ``name`` (see the module docstring), or None."""
    for how, path in candidates(name):
        if path.is_file():
            if how == OLD_CACHE:
                _warn_old_cache(path)
            return Located(name, path, how)
    over = _overrides.get() or {}
    if name in over:
        raise WeightsError(f"--weights {name}={over[name]}: no such file")
    return None


def fixes(name: str) -> str:
    """The ways to provide ``name``'s weights, for error messages (one line)."""
    ws = registry.get(name)
    get = (f"`reid-bench weights convert caffenet bvlc_reference_caffenet.caffemodel` "
           f"(download {registry.BVLC_CAFFENET_URL}; see papers/verif_identif/README.md)"
           if ws.library == "bvlc" else f"`reid-bench weights fetch {name}` where there is internet")
    return (f"fixes: {get}; or `--weights {name}=PATH`; or put {ws.file_names[0]} in "
            f"${ENV_DIR}")


def offline_reason(host: str, timeout: float = 3.0) -> str | None:
    """Why a download cannot work right now (an env switch, or ``host`` unreachable within
    ``timeout`` s), or None if it may. DNS has no timeout of its own, so the probe runs in a
    daemon thread that we stop waiting for."""
    for var in ("REID_BENCH_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() not in ("", "0", "false", "no"):
            return f"{var} is set"
    result: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(None)
        except OSError as exc:
            result.append(f"{host} unreachable ({exc.__class__.__name__})")

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return result[0] if result else f"{host} unreachable (no answer in {timeout:g} s)"


def _download_host(ws: registry.WeightSet) -> str:
    if ws.library == "timm":
        return "huggingface.co"
    if ws.library == "torchvision":
        return "download.pytorch.org"
    return "dl.caffe.berkeleyvision.org"


def fetch(name: str) -> Located:
    """Make the weights of ``name`` local, downloading through timm / torchvision into their
    normal caches when needed (the download is logged). CaffeNet cannot be fetched (no library ships it): the error
    says how to convert it."""
    hit = locate(name)
    if hit is not None:
        return hit
    ws = registry.get(name)
    if ws.library == "bvlc":
        raise WeightsError(f"{name}: weights not found; {fixes(name)}")
    why = offline_reason(_download_host(ws))
    if why:
        raise WeightsError(f"{name}: ImageNet weights ({ws.library} {ws.tag}) are not cached "
                           f"and cannot be downloaded ({why}); {fixes(name)}")
    log.info("%s: downloading %s %s …", name, ws.library, ws.tag)
    if ws.library == "timm":
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(registry._timm_cfg(ws.tag).hf_hub_id, "model.safetensors")
        return Located(name, Path(path), "Hugging Face cache")
    registry._tv_weights(ws.tag).get_state_dict(progress=True)  # → torch hub cache
    return Located(name, _torch_hub_file(ws.library_file), "torch hub cache")


_SHA: dict[tuple[str, int, int], str] = {}


def sha256(path: Path) -> str:
    """sha256 of a file (memoised by path, size and mtime within the process)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        _SHA[key] = file_digest(path, "sha256")
    return _SHA[key]
