"""Name → object registries for methods and datasets (timm-style).

A method or dataset module registers itself at import time with a decorator; duplicate names
are errors, unknown names list the valid ones and the nearest match.
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of builders; ``kind`` is used in error messages ("method", "dataset")."""

    def __init__(self, kind: str, package: str):
        self.kind = kind
        self._package = package
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise RegistryError(f"duplicate {self.kind} name {name!r}: already registered by "
                                    f"{getattr(self._items[name], '__module__', '?')}")
            self._items[name] = obj
            return obj

        return deco

    def _load_all(self) -> None:
        # Import every module of the package once so that all decorators have run.
        if self._loaded:
            return
        pkg = importlib.import_module(self._package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self._package}.{mod.name}")
        # Methods/datasets kept outside the tree: REID_BENCH_PLUGINS="pkg.mod,other_mod".
        for name in filter(None, os.environ.get("REID_BENCH_PLUGINS", "").split(",")):
            try:
                importlib.import_module(name.strip())
            except ImportError as exc:
                raise RegistryError(f"REID_BENCH_PLUGINS names module {name!r}, which cannot be "
                                    f"imported: {exc}") from None
        self._loaded = True

    def names(self) -> list[str]:
        self._load_all()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load_all()
        return name in self._items

    def get(self, name: str) -> T:
        self._load_all()
        try:
            return self._items[name]
        except KeyError:
            near = difflib.get_close_matches(name, self._items, n=1)
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise RegistryError(f"unknown {self.kind} {name!r}.{hint} "
                                f"Valid {self.kind}s: {', '.join(self.names())}") from None


METHODS: Registry = Registry("method", "reid_bench.models")
DATASETS: Registry = Registry("dataset", "reid_bench.data")
