"""Content-addressed cache for expensive shared stages (a stage-1 network, a verification
network for a given K, a trained model shared by several table columns).

An artefact is a folder ``<root>/<kind>/<hash>/`` keyed by the hash of its resolved config and
written atomically: built in a temporary sibling folder, then renamed into place. A file lock
makes concurrent runners build it once.

Every artefact records the sha256 of each of its files in ``manifest.json``; an artefact is
verified against it before it is reused (once per process). A file that changed since (bit rot,
a replaced or hand-edited model) is logged as an error, the folder is set aside under
``<root>/_set_aside/`` (kept, never deleted) and the artefact is rebuilt.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from ..core import atomic
from ..core.hashing import file_digest, stable_hash

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_UNLISTED = ("config.json", MANIFEST)  # written after the manifest


def write_manifest(folder: Path) -> dict[str, str]:
    """Record {relative path: sha256} of every file in ``folder`` (but the config and the
    manifest itself) in its ``manifest.json``; returns it."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): file_digest(p)
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in _UNLISTED}
    (folder / MANIFEST).write_text(json.dumps(files, indent=1, sort_keys=True))
    return files


def read_manifest(folder: Path) -> dict[str, str] | None:
    """The manifest of an artefact folder, or None when it has none (or it is unreadable)."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return None
    return data


def manifest_mismatch(folder: Path) -> str | None:
    """Why the files of artefact ``folder`` are not the ones it recorded, or None."""
    folder = Path(folder)
    files = read_manifest(folder)
    if files is None:
        return f"{folder / MANIFEST} is missing or unreadable: its files cannot be verified"
    for rel, want in sorted(files.items()):
        p = (folder / rel).resolve()
        if not p.is_relative_to(folder.resolve()):
            return f"{MANIFEST} lists {rel!r}, outside the artefact folder"
        if not p.is_file():
            return f"{folder / rel} is missing"
        got = file_digest(p)
        if got != want:
            return (f"{folder / rel} changed since it was written: sha256 {got[:16]}…, "
                    f"recorded {want[:16]}…")
    extra = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name not in _UNLISTED
                   and p.relative_to(folder).as_posix() not in files)
    return f"files not in its {MANIFEST}: {', '.join(extra)}" if extra else None


def set_aside(folder: Path, root: Path) -> Path:
    """Move artefact ``folder`` to ``<root>/_set_aside/<kind>/<hash>.<UTC time>``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    dest = Path(root) / "_set_aside" / folder.parent.name / f"{folder.name}.{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.replace(dest)
    except FileNotFoundError:  # another runner set it aside first
        pass
    return dest


class ArtifactCache:
    """``get_or_create(kind, config, build)`` → folder holding the artefact."""

    def __init__(self, root: str | os.PathLike, refresh: bool = False, salt: str = ""):
        """``refresh``: rebuild each artefact the first time this process asks for it
        (``run --force``); later requests in the same process reuse the fresh one, so a
        stage shared by several rows is still trained once per run. ``salt`` (the code
        fingerprint, see ``salted``) is part of every key."""
        self.root = Path(root)
        self.refresh = refresh
        self.salt = salt
        self._fresh: set[Path] = set()
        self._verified: set[Path] = set()

    def salted(self, salt: str) -> ArtifactCache:
        """A view of the same cache whose keys also depend on ``salt`` (sharing the refresh
        bookkeeping), so artefacts built by other code are never reused."""
        view = ArtifactCache(self.root, self.refresh, salt)
        view._fresh, view._verified = self._fresh, self._verified
        return view

    def path_for(self, kind: str, config: dict) -> Path:
        return self.root / kind / stable_hash({"config": config, "code": self.salt}
                                              if self.salt else config)

    def get_or_create(self, kind: str, config: dict, build: Callable[[Path], None]) -> Path:
        """Return the folder of artefact (``kind``, ``config``); if absent, call ``build(tmp)``
        to fill a temporary folder and publish it atomically. ``build`` may raise: nothing is
        published then."""
        final = self.path_for(kind, config)
        if self.reusable(final):
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if self.reusable(final):
                return final

            def fill(tmp: Path) -> None:
                build(tmp)
                write_manifest(tmp)  # the sha256 of every file, checked on reuse
                # config.json last: its presence marks a complete artefact.
                (tmp / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True,
                                                            default=str))

            atomic.build_dir(final, fill, replace=True)
            self._fresh.add(final)
            self._verified.add(final)
        return final

    def reusable(self, final: Path) -> bool:
        """Whether the artefact folder ``final`` (a ``path_for``) is complete, its files are
        the ones its manifest records, and it may be returned as is: always, unless
        ``refresh`` and this process has not rebuilt it yet. A complete artefact whose files
        changed is logged as an error and set aside (then rebuilt by the caller)."""
        if not ((not self.refresh or final in self._fresh)
                and (final / "config.json").is_file()):
            return False
        if final in self._verified:
            return True
        why = manifest_mismatch(final)
        if why is None:
            self._verified.add(final)
            return True
        moved = set_aside(final, self.root)
        log.error("artefact %s/%s is not reused: %s. Set aside as %s; it is rebuilt.",
                  final.parent.name, final.name, why, moved)
        return False

    def exists(self, kind: str, config: dict) -> bool:
        return (self.path_for(kind, config) / "config.json").is_file()
