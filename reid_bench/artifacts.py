"""Content-addressed cache for expensive shared stages (a stage-1 network, a verification
network for a given K, a trained model shared by several table columns).

An artefact is a folder ``<root>/<kind>/<hash>/`` keyed by the hash of its resolved config and
written atomically: built in a temporary sibling folder, then renamed into place. A file lock
makes concurrent runners build it once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from . import atomic
from .hashing import stable_hash


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

    def salted(self, salt: str) -> ArtifactCache:
        """A view of the same cache whose keys also depend on ``salt`` (sharing the refresh
        bookkeeping), so artefacts built by other code are never reused."""
        view = ArtifactCache(self.root, self.refresh, salt)
        view._fresh = self._fresh
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
                # config.json last: its presence marks a complete artefact.
                (tmp / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True,
                                                            default=str))

            atomic.build_dir(final, fill, replace=True)
            self._fresh.add(final)
        return final

    def reusable(self, final: Path) -> bool:
        """Whether the artefact folder ``final`` (a ``path_for``) is complete and may be
        returned as is: always, unless ``refresh`` and this process has not rebuilt it yet."""
        return ((not self.refresh or final in self._fresh)
                and (final / "config.json").is_file())

    def exists(self, kind: str, config: dict) -> bool:
        return (self.path_for(kind, config) / "config.json").is_file()
