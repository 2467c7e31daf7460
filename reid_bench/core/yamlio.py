"""YAML loading that remembers the line of every key, so errors can point at it, and that is
bounded and strict: a spec is untrusted input that ``validate``, ``report`` and ``run`` all read.

Aliases (``&name`` … ``*name``) are allowed — specs share an ``input:`` block between rows
that way — but their expansion is bounded: a tree of more than ``MAX_NODES`` nodes once every
alias is expanded is refused (a 1 KB "billion laughs" file would otherwise be gigabytes once
expanded, and every consumer of the data — line map, validation, hashing — expands it).
Refused, each with ``file:line``: that; merge keys (``<<``); a key given twice in one mapping
(YAML would silently keep the last); non-finite numbers (``.inf``, ``.nan``); nesting deeper
than ``MAX_DEPTH`` (a recursive alias included); files over ``MAX_BYTES``; text that is not
UTF-8.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError

KeyPath = tuple  # tuple of str keys / int indices

MAX_BYTES = 1 << 20  # the largest spec is ~20 KB
MAX_DEPTH = 64
MAX_NODES = 20_000  # nodes with every alias expanded; the largest spec has ~550
_MERGE = "tag:yaml.org,2002:merge"
_FLOAT = "tag:yaml.org,2002:float"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that composes to a bounded depth and counts the nodes ``_walk`` expands."""

    def __init__(self, text: str, where: str):
        super().__init__(text)
        self.where, self.depth, self.expanded = where, 0, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise SpecError(f"{self.where}:{mark.line + 1}: nested more than {MAX_DEPTH} "
                                "levels deep; a spec needs a handful")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``path``; return ``(data, lines)`` where ``lines[key_path]`` is the 1-based line of
    that key (or list item). Raises SpecError with file and line for malformed YAML and for
    everything the module docstring lists as refused."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(f"{path}: {len(raw)} bytes; a spec is at most {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                        f"{exc.start}); save the file as UTF-8") from None
    return load_text_with_lines(text, str(path))


def load_text_with_lines(text: str, where: str) -> tuple[Any, dict[KeyPath, int]]:
    """``load_yaml_with_lines`` of YAML ``text``; errors name ``where`` (a file, or e.g.
    ``--set recipe.train.lr``)."""
    loader = _StrictLoader(text, where)
    try:
        try:
            node = loader.get_single_node()
            lines: dict[KeyPath, int] = {}
            if node is not None:
                _walk(loader, node, (), lines)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{at}: malformed YAML: {problem}. Fix the syntax at that line "
                        "(indentation, a missing ':' or an unclosed quote/bracket).") from None
    except RecursionError:
        raise SpecError(f"{where}: nested too deeply to read") from None
    return data, lines


def _walk(loader: _StrictLoader, node: yaml.Node, path: KeyPath,
          lines: dict[KeyPath, int]) -> None:
    where = loader.where
    loader.expanded += 1
    if loader.expanded > MAX_NODES or len(path) > MAX_DEPTH:
        what = (f"more than {MAX_NODES} values once its aliases (*name) are expanded"
                if loader.expanded > MAX_NODES else f"nested more than {MAX_DEPTH} levels deep "
                "once its aliases are expanded (an alias inside its own anchor?)")
        raise SpecError(f"{where}:{node.start_mark.line + 1}: the document has {what}; "
                        "write the shared values out, or share fewer")
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for k, v in node.value:
            line = k.start_mark.line + 1
            if k.tag == _MERGE:
                raise SpecError(f"{where}:{line}: YAML merge key '<<' is not allowed; write "
                                "the keys out in full")
            if not isinstance(k, yaml.ScalarNode):
                raise SpecError(f"{where}:{line}: a key must be plain text, not a list or "
                                "mapping")
            ident = loader.construct_object(k)
            try:
                prev = first.get(ident)
            except TypeError:  # unhashable: construct_document reports it
                prev = None
            if prev is not None:
                raise SpecError(f"{where}:{line}: key {k.value!r} given twice in one mapping "
                                f"(lines {prev} and {line}); YAML would silently keep only the "
                                "last one — remove or merge one of them")
            first[ident] = line
            key = k.value
            lines[path + (key,)] = line
            _walk(loader, v, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _walk(loader, item, path + (i,), lines)
    elif node.tag == _FLOAT and not math.isfinite(loader.construct_yaml_float(node)):
        raise SpecError(f"{where}:{node.start_mark.line + 1}: {node.value!r} is not a finite "
                        "number; write a finite value")


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path`` or of its nearest ancestor that has one."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())
