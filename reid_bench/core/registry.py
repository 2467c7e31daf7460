"""Name → object registries for methods, datasets and evaluation protocols (timm-style).

A method, dataset or protocol module registers itself at import time with a decorator;
duplicate names are errors, unknown names list the valid ones and the nearest match. The
registry loads its package's modules on first use, so a new method, dataset or protocol is one
new file in ``reid_bench/models/``, ``reid_bench/data/`` or ``reid_bench/eval/protocols/``.
A registry reads like a read-only mapping (``name in REG``, ``REG[name]``, ``sorted(REG)``,
``REG.items()``); ``get`` raises ``RegistryError`` for an unknown name.
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of builders; ``kind`` is used in error messages ("method", "dataset",
    "protocol"); ``package`` is the package whose modules register into it."""

    def __init__(self, kind: str, package: str):
        self.kind = kind
        self._package = package
        self._items: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._loaded = False

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        """Decorator registering its object under ``name``. ``info``: declarations kept beside
        it, read back with ``info(name)`` (a dataset's ``check_variants``)."""
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise RegistryError(f"duplicate {self.kind} name {name!r}: already registered by "
                                    f"{getattr(self._items[name], '__module__', '?')}")
            self._items[name] = obj
            self._info[name] = dict(info)
            return obj

        return deco

    def _load_all(self) -> None:
        # Import every module of the package once so that all decorators have run.
        if not self._loaded:
            pkg = importlib.import_module(self._package)
            for mod in pkgutil.iter_modules(pkg.__path__):
                if not mod.name.startswith("_"):
                    importlib.import_module(f"{self._package}.{mod.name}")
            self._loaded = True
        # Methods/datasets/protocols kept outside the tree: REID_BENCH_PLUGINS="pkg.mod,other".
        # Read on every lookup, not once: a plugin named after the first lookup (an embedding
        # program, a test) is still found, whatever ran before (a module imported already is
        # a sys.modules lookup).
        for name in filter(None, os.environ.get("REID_BENCH_PLUGINS", "").split(",")):
            try:
                importlib.import_module(name.strip())
            except ImportError as exc:
                raise RegistryError(f"REID_BENCH_PLUGINS names module {name!r}, which cannot be "
                                    f"imported: {exc}") from None

    def names(self) -> list[str]:
        self._load_all()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load_all()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def values(self) -> list[T]:
        return [self._items[n] for n in self.names()]

    def info(self, name: str) -> dict[str, Any]:
        """The ``info`` registered with ``name`` ({} when none; RegistryError if unknown)."""
        self.get(name)
        return self._info[name]

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
PROTOCOLS: Registry = Registry("protocol", "reid_bench.eval.protocols")
