"""Stable short hashes of JSON-like values (config hashes, cache keys). Its own module so that
code which only needs a hash (the artefact cache, training helpers) does not import the spec
schema and, through it, the code fingerprints of everything the schema imports."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any, n: int = 16) -> str:
    """Deterministic short hash of a JSON-serialisable object (keys sorted)."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]
