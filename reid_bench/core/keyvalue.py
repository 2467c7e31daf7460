"""The one parser of ``KEY=VALUE`` command-line items (``run --set``, ``run --variant``,
``run --weights``) and the one spelling of a spec key.

A spec key is the value's dotted path in the spec YAML below the row or column that holds it:
``recipe.<path>`` (``recipe.train.lr``: the table's or a row's ``recipe:`` block),
``params.<name>``, ``eval.<field>``, ``options.<name>``. ``--set`` and ``--variant`` both take
it. A key that starts with none of these blocks is the old ``--set`` spelling of a recipe key
(``train.lr``): ``spec_key`` reads it as ``recipe.train.lr`` and says it is the old spelling
(the CLI warns; it goes in the next release).

What a VALUE means is the option's own business: YAML for ``--set``/``--variant``
(``yaml_value``), a file path for ``--weights``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from .errors import ReidBenchError

BLOCKS = ("recipe", "params", "eval", "options")


class KeyValueError(ReidBenchError):
    """A ``KEY=VALUE`` item is malformed, repeated, or names a key that is not allowed."""


def parse_pairs(items: Iterable[str], *, option: str, example: str,
                allowed: Collection[str] | None = None,
                dotted: bool = False, empty_value: bool = False) -> dict[str, str]:
    """``["a.b=1", …]`` → ``{"a.b": "1"}`` in the given order (keys stripped, values as
    written). Raises KeyValueError naming ``option``, the item and the fix (``example``, the
    ``allowed`` keys) for an item without ``=``, an empty key (or, ``dotted``, an empty part
    of one), an empty value unless ``empty_value``, a key given twice, or a key not in
    ``allowed``."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, raw = str(item).partition("=")
        key = key.strip()
        if not eq or not key or (dotted and any(not k for k in key.split("."))) \
                or (not empty_value and not raw.strip()):
            hint = f" ({_allowed(allowed)})" if allowed is not None else ""
            raise KeyValueError(f"{option} {item!r}: expected KEY=VALUE{hint}, e.g. {option} "
                                f"{example}")
        if allowed is not None and key not in allowed:
            raise KeyValueError(f"{option} {key}={raw}: unknown key {key!r} "
                                f"({_allowed(allowed)})")
        if key in out:
            raise KeyValueError(f"{option} {key} is given twice; give each key once")
        out[key] = raw
    return out


def _allowed(allowed: Collection[str]) -> str:
    return "allowed keys: " + ", ".join(allowed)


def spec_key(key: str) -> tuple[str, bool]:
    """``key`` in the one spelling (``recipe.train.lr``) and whether it was the old ``--set``
    spelling of a recipe key (``train.lr``)."""
    if key.split(".", 1)[0] in BLOCKS:
        return key, False
    return f"recipe.{key}", True


def yaml_value(option: str, key: str, raw: str, *, strict: bool = True) -> Any:
    """A VALUE as YAML (``0.02``, ``true``, ``[7, 9]``, ``adam``; an empty value is ""). Under
    ``strict`` text that is not YAML is a KeyValueError naming ``option`` and ``key``;
    otherwise it is kept as the text."""
    import yaml

    if not raw.strip():
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        if not strict:
            return raw
        raise KeyValueError(f"{option} {key}: value {raw!r} is not valid YAML ({exc})") from None
