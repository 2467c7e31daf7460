"""A mid-training checkpoint's identity: what it must match to be resumed (the cell's full
training-config hash and the method's code fingerprint). The runner sets it around a cell's
training (``use_checkpoint_identity``); ``train_stage`` stores it in every checkpoint and sets a
checkpoint with another identity aside (moved to ``<work folder>.set-aside/``, never deleted)
instead of resuming it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.scoped import Scoped

_IDENTITY: Scoped[dict | None] = Scoped("ckpt_identity", None)


def checkpoint_identity(train_hash: str, code_fingerprint: str) -> dict[str, str]:
    """What a mid-training checkpoint of a cell must match to be resumed."""
    return {"train_hash": str(train_hash), "code_fingerprint": str(code_fingerprint)}


@contextlib.contextmanager
def use_checkpoint_identity(identity: dict | None) -> Iterator[None]:
    """Every ``train_stage`` inside stores ``identity`` in its checkpoints and resumes only a
    checkpoint carrying the same one."""
    with _IDENTITY.use(identity):
        yield


def current_identity(stage: str, optim: Any) -> dict[str, Any]:
    """The identity a checkpoint of ``stage`` trained with ``optim`` carries now: the runner's
    cell identity (if any) plus the stage name and its optimiser recipe."""
    dump = optim.model_dump(mode="json") if hasattr(optim, "model_dump") else repr(optim)
    return {**(_IDENTITY.get() or {}), "stage": stage, "optim": dump}


def identity_mismatch(stored: Any, expected: dict[str, Any]) -> str:
    """"" when a checkpoint's ``stored`` identity equals ``expected``, else what differs."""
    if not isinstance(stored, dict):
        return "it records no training config (written by an older version)"
    diff = [k for k in sorted(set(stored) | set(expected)) if stored.get(k) != expected.get(k)]
    return "" if not diff else "its " + ", ".join(k.replace("_", " ") for k in diff) + \
        " differ(s) from this run's"


def set_aside(path: Path) -> Path:
    """Move ``path`` to ``<its folder>.set-aside/<name>.<UTC time>`` (never deleted: a
    cell's work folder is removed once it finishes ok, the set-aside folder beside it is not)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    dest = path.parent.with_name(path.parent.name + ".set-aside") / f"{path.name}.{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.replace(dest)
    except FileNotFoundError:  # another rank of the same DDP job moved it first
        pass
    return dest
