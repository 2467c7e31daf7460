"""Mid-training checkpoints, written atomically and read back without unpickling.

A checkpoint is two files in the cell's work folder: ``<name>.ckpt``, a ``torch.save`` of plain
tensors and containers only (model and optimiser state, the torch/CUDA/Python/NumPy RNG states
as tensors and lists, the loader's shuffling state, the position in the epoch, the history), and
``<name>.ckpt.json``, its identity (``checkpoint_identity.current_identity``) and the sha256 of the
``.ckpt``. A results folder is untrusted input: the JSON sidecar is read first (size-bounded);
only a checkpoint of this very training whose bytes match the recorded hash is loaded, and then
with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers,
so a planted pickle payload never runs. Anything else is set aside (kept, never deleted) and the
stage trains from scratch.
"""

from __future__ import annotations

import io
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import atomic
from ..core.hashing import bytes_digest, file_digest
from .checkpoint_identity import identity_mismatch, set_aside

log = logging.getLogger(__name__)

SIDECAR_MAX_BYTES = 1 << 20  # an identity is a few hundred bytes


def sidecar(path: Path) -> Path:
    """The identity file of checkpoint ``path``."""
    return path.with_name(path.name + ".json")


# ---------------------------------------------------------------------------- RNG states


def rng_states() -> dict[str, Any]:
    """Every RNG a training step may draw from, as tensors and lists (``weights_only``-safe)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64),
                       "gauss": gauss},
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}}


def set_rng_states(s: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned (CUDA states only when the GPU count matches)."""
    torch.set_rng_state(s["torch"])
    cuda = s.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    py = s.get("python")
    if py:
        random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()),
                         py["gauss"]))
    npy = s.get("numpy")
    if npy:
        np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                             npy["has_gauss"], npy["cached"]))


# ---------------------------------------------------------------------------- save / load


def save(path: Path, state: dict[str, Any], identity: dict[str, Any]) -> None:
    """Write ``state`` (tensors and plain containers only) to ``path`` and its identity with the
    content's sha256 to the sidecar, each atomically (``.ckpt`` first: a crash in between leaves
    a sidecar whose hash does not match, which ``load`` sets aside)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, data)
    atomic.write_text(sidecar(path), json.dumps(
        {"identity": identity, "sha256": bytes_digest(data)}, sort_keys=True))


def load(path: Path, identity: dict[str, Any], stage: str) -> dict[str, Any] | None:
    """The state saved at ``path`` when it is a checkpoint of the training ``identity``, else
    None (a checkpoint that is present but not resumable is set aside, with a warning saying
    why). Never unpickles: see the module docstring."""
    side = sidecar(path)
    if not path.is_file():
        if side.is_file():
            set_aside(side)
        return None
    why = _refusal(path, side, identity)
    if why is None:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 — weights_only refusal, truncation: not ours
            why = f"it does not load as plain tensors ({type(exc).__name__}: {exc})"
    moved = set_aside(path)
    if side.is_file():
        set_aside(side)
    log.warning("[%s] not resuming %s: %s; set it aside as %s and training from scratch",
                stage, path.name, why, moved)
    return None


def _refusal(path: Path, side: Path, identity: dict[str, Any]) -> str | None:
    """Why the checkpoint at ``path`` may not be loaded, or None."""
    try:
        if side.stat().st_size > SIDECAR_MAX_BYTES:
            return f"its identity file {side.name} is larger than {SIDECAR_MAX_BYTES} bytes"
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return (f"it has no identity file {side.name} (written by an older version, or not by "
                "reid-bench)")
    except (OSError, ValueError) as exc:
        return f"its identity file {side.name} is unreadable ({exc})"
    if not isinstance(meta, dict):
        return f"its identity file {side.name} is not a JSON object"
    why = identity_mismatch(meta.get("identity"), identity)
    if why:
        return why
    if file_digest(path) != meta.get("sha256"):
        return "its content does not match the sha256 its identity file records"
    return None


def remove(path: Path) -> None:
    """Delete a finished stage's checkpoint and its sidecar."""
    path.unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)
