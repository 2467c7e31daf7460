"""Error messages of a spec: each names the file, the line, the key path and what is allowed."""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..core.yamlio import KeyPath, line_of

# A table-level recipe error found again with the --smoke overrides carries this tag.
SMOKE_TAG = " (with --smoke overrides)"


def format_errors(path: Path, lines: dict, errors: list[tuple]) -> str:
    """``(key path, message)`` errors as ``file:line: key.path: message`` lines."""
    # A table-level mistake is found once per row and again with the smoke overrides: say it
    # once (the smoke-tagged copy only when the plain recipe is fine at that key).
    plain = {(tuple(kp), msg) for kp, msg in errors}
    out = []
    for kp, msg in errors:
        if msg.endswith(SMOKE_TAG) and (tuple(kp), msg[: -len(SMOKE_TAG)]) in plain:
            continue
        ln = line_of(lines, kp)
        loc = f"{path}:{ln}" if ln else str(path)
        key = ".".join(str(k) for k in kp) or "<top level>"
        line = f"{loc}: {key}: {msg}"
        if line not in out:
            out.append(line)
    return "\n".join(out)


def pydantic_errors(exc: ValidationError, prefix: KeyPath, model: type[BaseModel],
                    data: Any) -> list[tuple]:
    """pydantic's errors for ``model`` as ``(key path below prefix, message)``; an unknown key
    names the nearest valid one."""
    errs = []
    for e in exc.errors():
        loc = prefix + tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            # Find the model that owns the parent to suggest the nearest valid key.
            valid = _valid_keys_at(model, tuple(e["loc"])[:-1])
            near = difflib.get_close_matches(str(e["loc"][-1]), valid, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            errs.append((loc, f"unknown key.{hint} Allowed keys: {', '.join(valid)}"))
        elif e["type"] == "missing":
            errs.append((loc, "required key is missing"))
        else:
            errs.append((loc, f"{e['msg']} (got {e.get('input')!r})"))
    return errs


def _valid_keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) pydantic model at ``loc`` below ``model``."""
    cur: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)):
            return []
        f = cur.model_fields.get(part)
        if f is None:
            return []
        ann = f.annotation
        # unwrap Optional / list / dict
        for _ in range(3):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                break
            if args:
                ann = args[-1]
        cur = ann
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return list(cur.model_fields)
    return []
