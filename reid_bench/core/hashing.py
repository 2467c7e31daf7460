"""Every hash the suite computes: short sha256 hashes of text, bytes and JSON-like values
(config hashes, cache keys, fingerprints, row digests, file-name suffixes) and full digests of
files and in-memory bytes. The only module that imports ``hashlib`` (tests/test_short_hash.py
checks it). Its own module so that code which only needs a hash (the artefact cache, training
helpers) does not import the spec schema and, through it, the code fingerprints of everything
the schema imports."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def short_hash(data: bytes | str, n: int = 16) -> str:
    """The first ``n`` hex digits of the sha256 of ``data`` (a str is hashed as UTF-8)."""
    return short_hash_parts((data,), n)


def short_hash_parts(parts: Iterable[bytes | str], n: int = 16) -> str:
    """``short_hash`` of the concatenation of ``parts``, hashed as they come (no joined copy in
    memory: a dataset's listing, a module tree's sources)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
    return h.hexdigest()[:n]


def stable_hash(obj: Any, n: int = 16) -> str:
    """Deterministic short hash of a JSON-serialisable object (keys sorted)."""
    return short_hash(json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")), n)


def bytes_digest(data: bytes) -> str:
    """Full sha256 hex digest of bytes in memory (``file_digest`` for a file)."""
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes with hashlib's ``algorithm``, read in 4 MiB chunks
    (``hashlib.file_digest`` needs Python 3.11)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
