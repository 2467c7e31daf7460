"""Load a weights file into a backbone strictly, and remember what was loaded.

Every key of the file must map onto the network and every parameter/buffer of the network
must come from the file; the one exception is the ImageNet classifier head the method
replaces, which each ``WeightSet`` names (``head``). Anything else is a ``WeightsError`` that
lists the keys, so a converted file that names fc6 ``fc6.*`` instead of ``fc.0.*`` cannot leave
fc6 random in silence.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..core.scoped import Scoped
from . import registry, store
from .store import WeightsError

log = logging.getLogger(__name__)

_records: Scoped[list | None] = Scoped("weights_records", None)
_skip: Scoped[bool] = Scoped("weights_skip", False)


@dataclass(frozen=True)
class Loaded:
    """Provenance of one load: weight set, one-line source, file and its sha256."""

    name: str
    source: str
    path: str
    sha256: str

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def recording() -> Iterator[list[Loaded]]:
    """Collect a ``Loaded`` for every pretrained load inside the block."""
    with _records.use([]) as out:
        yield out


@contextlib.contextmanager
def skip_pretrained() -> Iterator[None]:
    """Build architectures only: inside the block ``load_pretrained`` loads nothing. For
    rebuilding a trained model whose state dict is loaded next (no network, no ImageNet file)."""
    with _skip.use(True):
        yield


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (a ``{"state_dict": ...}`` or
    ``{"model": ...}`` wrapper and a DataParallel ``module.`` prefix are unwrapped)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(f"{path}: not a readable state-dict file ({exc})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], *,
                head: tuple[str, ...] = (), where: str = "weights") -> None:
    """Load ``state`` into ``module``. Keys starting with a ``head`` prefix are dropped (the
    classifier the method replaces); every other key must exist in the module with the same
    shape, and the module must receive every key. BatchNorm's ``num_batches_tracked`` counter
    may be absent (older torchvision files): it is not a weight."""
    state = {k: v for k, v in state.items() if not (head and k.startswith(head))}
    own = module.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in own)
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                    for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = [f"missing keys {missing}" if missing else "",
                 f"unexpected keys {unexpected}" if unexpected else "",
                 f"shape mismatches {shapes}" if shapes else ""]
        raise WeightsError(f"{where} does not fit the network: "
                           + "; ".join(p for p in parts if p)
                           + (f" (only the classifier head {list(head)} may differ)"
                              if head else ""))
    module.load_state_dict(state, strict=False)


def load_pretrained(module: nn.Module, name: str, pretrained: str) -> Loaded | None:
    """Load the ``pretrained`` weights of backbone ``name`` into ``module`` strictly.

    ``pretrained``: "none" (nothing), "imagenet" (the weight set, found or fetched by
    ``store``) or a file path. Returns the provenance (also appended to an active
    ``recording()``), or None when nothing was loaded."""
    if pretrained == "none" or _skip.get():
        return None
    ws = registry.get(name)
    if pretrained == "imagenet":
        located = store.fetch(name)
    else:
        p = Path(pretrained).expanduser()
        if not p.is_file():
            raise WeightsError(f"{name}: pretrained weights file {p} not found; name an existing "
                               f"file, 'imagenet' or 'none' ({store.fixes(name)})")
        located = store.Located(name, p, "recipe path")
    rec = Loaded(name, located.source, str(located.path), store.sha256(located.path))
    if (ws.sha256_prefix and located.path.name == ws.library_file
            and not rec.sha256.startswith(ws.sha256_prefix)):
        # torchvision names its files after their sha256: a mismatch is a corrupt download.
        raise WeightsError(f"{located.path}: sha256 {rec.sha256[:12]}… does not match the "
                           f"{ws.sha256_prefix} in its name (truncated or corrupt download); "
                           f"delete it and run `reid-bench weights fetch {name}`")
    state = read_state_dict(located.path)
    load_strict(module, state, head=ws.head, where=f"{name} weights {located.path}")
    log.info("  %s: loaded %s (sha256 %s)", name, rec.source, rec.sha256[:12])
    records = _records.get()
    if records is not None:
        records.append(rec)
    return rec
