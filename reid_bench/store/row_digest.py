"""Integrity checks that keep a wrong number from passing as a reproduction.

- ``row_digest``: a digest of a results row's own content, written into its ``row_digest``
  column; a row whose fields no longer match it was edited by hand (``row_edited``).
- ``checkpoint_identity``: what a mid-training checkpoint must match to be resumed (the cell's
  full training-config hash and the method's code fingerprint). The runner sets it around a
  cell's training (``use_checkpoint_identity``); ``train_stage`` stores it in every checkpoint
  and sets a checkpoint with another identity aside (moved to ``<work folder>.set-aside/``,
  never deleted) instead of resuming it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

DIGEST_COLUMN = "row_digest"


def _canon(v: Any) -> str:
    """A field as text, the same whether it was written (Python values) or read back from the
    CSV (pandas: ints in float columns, bools parsed, blanks as NaN)."""
    if v is None:
        return ""
    try:
        if v != v:  # NaN (float, numpy) and pandas NA alike
            return ""
    except (TypeError, ValueError):
        return ""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "true" if v else "false"
    s = str(v)
    if s.strip().lower() in ("true", "false"):
        return s.strip().lower()
    try:
        f = float(s)
    except ValueError:
        return s
    if math.isnan(f):
        return ""
    if math.isinf(f):
        return s.strip().lower()
    return str(int(f)) if f.is_integer() and abs(f) < 2**53 else repr(f)


def row_digest(row: Mapping[str, Any]) -> str:
    """16-hex digest over every non-empty field of ``row`` except ``row_digest`` itself.
    Empty fields are left out, so a column added to the schema later (empty in old rows) does
    not change the digest of the rows written before it; so are false ones, because reading
    turns an empty flag column (``smoke``, ``synthetic``, ``git_dirty``) into False."""
    fields = {str(k): _canon(v) for k, v in row.items() if k != DIGEST_COLUMN}
    fields = {k: v for k, v in sorted(fields.items()) if v not in ("", "false")}
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def row_edited(row: Mapping[str, Any]) -> str:
    """Why ``row`` (a results row as read back) cannot be trusted as written, or "" when its
    digest matches: "no row digest" or "content does not match its row digest"."""
    # The stored digest is text: never read it as a number ("57293887554656e0" is hex).
    raw = row.get(DIGEST_COLUMN)
    stored = raw.strip() if isinstance(raw, str) else ""
    if not stored:
        return "no row digest (written by hand or by a version without digests)"
    if stored != row_digest(row):
        return "content does not match its row digest (edited after it was written)"
    return ""


# --------------------------------------------------------------------------------------------
# Checkpoint identity

_IDENTITY: contextvars.ContextVar[dict | None] = contextvars.ContextVar("ckpt_identity",
                                                                      default=None)


def checkpoint_identity(train_hash: str, code_fingerprint: str) -> dict[str, str]:
    """What a mid-training checkpoint of a cell must match to be resumed."""
    return {"train_hash": str(train_hash), "code_fingerprint": str(code_fingerprint)}


@contextlib.contextmanager
def use_checkpoint_identity(identity: dict | None) -> Iterator[None]:
    """Every ``train_stage`` inside stores ``identity`` in its checkpoints and resumes only a
    checkpoint carrying the same one."""
    token = _IDENTITY.set(identity)
    try:
        yield
    finally:
        _IDENTITY.reset(token)


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
