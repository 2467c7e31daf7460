"""Stable short hashes of JSON-like values (config hashes, cache keys). Its own module so that
code which only needs a hash (the artefact cache, training helpers) does not import the spec
schema and, through it, the code fingerprints of everything the schema imports."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def stable_hash(obj: Any, n: int = 16) -> str:
    """Deterministic short hash of a JSON-serialisable object (keys sorted)."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes with hashlib's ``algorithm``, read in 4 MiB chunks
    (``hashlib.file_digest`` needs Python 3.11)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
