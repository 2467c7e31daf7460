"""``run --set KEY=VALUE``: recipe overrides, and the ``variant`` key of deviating results.

An override replaces one value of a row's resolved recipe (table recipe ⊕ row recipe, ⊕ the
smoke recipe under ``--smoke``), addressed by its path in the spec (``recipe.train.lr=0.02``,
``recipe.stage2.epochs=4``, ``recipe.input.resize=[288,144]``; ``core.keyvalue`` parses the
items and reads the old spelling without ``recipe.``). Values are parsed as YAML (``0.02``,
``true``, ``[7, 9]``, ``adam``). Overrides are validated against each row's method ``Recipe`` model, the
same way the spec is, so a typo names the key and the allowed ones. Evaluation settings are
the paper's protocol and cannot be overridden.

Results that deviate from the canonical spec carry a ``variant`` (part of the results key, see
``results.KEY``): the sorted ``;``-join of parts ``spec:<spec hash>`` (a spec file that is not the
canonical one), ``set:<key>=<value>`` (an override), ``variant:<key>=<value>`` (an assumption's
declared alternative) and ``subset``. ``compose_variant`` is the one place that joins them.

A spec is canonical when its file sits where the repository keeps the paper's table:
``.../papers/<paper id>/<table id>.yaml``. A copy anywhere else (or under another name) is keyed
``spec:<its hash>``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..core.errors import ReidBenchError

PREFIXES = ("spec:", "set:", "variant:", "subset")


class OverrideError(ReidBenchError):
    """A --set override is malformed or not valid for a row's recipe."""


# --------------------------------------------------------------------------------------------
# Variant keys


def compose_variant(parts: Iterable[str]) -> str:
    """The ``variant`` key of a set of deviations: distinct non-empty ``parts`` (each
    ``spec:…``, ``set:…``, ``variant:…`` or ``subset``) sorted and joined with ``;``. The
    canonical spec with no deviation is ""."""
    return ";".join(sorted({p for p in parts if p}))


def variant_parts(variant: str) -> list[str]:
    """The parts of a ``variant`` key (inverse of ``compose_variant``)."""
    return [p for p in str(variant or "").split(";") if p]


def is_canonical(spec: Any) -> bool:
    """Whether ``spec`` was loaded from ``papers/<paper id>/<table id>.yaml``."""
    p = Path(str(spec.path))
    return (p.name == f"{spec.table.id}.yaml" and p.parent.name == spec.paper.id
            and p.parent.parent.name == "papers")


def spec_parts(spec: Any) -> list[str]:
    """[] for the canonical spec, else ``["spec:<spec hash>"]``."""
    return [] if is_canonical(spec) else [f"spec:{spec.spec_hash}"]


def set_parts(overrides: dict[str, Any]) -> list[str]:
    """``set:<key>=<value>`` parts of ``overrides`` (values as compact JSON, text as is)."""
    return [f"set:{k}={spell(v)}" for k, v in sorted(overrides.items())]


def spell(value: Any) -> str:
    """A value as written in a variant part: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def describe_variant(variant: str, baseline: dict[str, Any] | None = None) -> list[str]:
    """Human-readable lines for a ``variant`` key, e.g. "deviates from the paper's recipe:
    train.lr=0.02 (spec: 0.01)" where ``baseline`` maps a dotted key to the spec's value;
    [] for the canonical spec."""
    parts = variant_parts(variant)
    out = []
    sets = [p[4:] for p in parts if p.startswith("set:")]
    if baseline:
        sets = [s + (f" (spec: {spell(baseline[k])})" if (k := s.partition("=")[0]) in baseline
                     else "") for s in sets]
    if sets:
        out.append("deviates from the paper's recipe: " + ", ".join(sets) + " (--set)")
    for p in parts:
        if p.startswith("spec:"):
            out.append(f"from another spec file (spec hash {p[5:]}), not the canonical "
                       "papers/<paper>/<table>.yaml: its recipe may differ from the one shown")
        elif p.startswith("variant:"):
            out.append(f"assumption variant: {p[8:]}")
        elif p == "subset":
            out.append("subset of the dataset")
    known = ("set:", "spec:", "variant:")
    out += [f"variant {p}" for p in parts if not p.startswith(known) and p != "subset"]
    return out


# --------------------------------------------------------------------------------------------
# --set KEY=VALUE


def parse_sets(items: Iterable[str]) -> dict[str, Any]:
    """``["recipe.train.lr=0.02", ...]`` → ``{"train.lr": 0.02}``: keys below the recipe, as
    the ``set:`` variant parts and the ``overrides`` column store them; values parsed as YAML.
    The old spelling ``train.lr=0.02`` gives the same (``core.keyvalue.spec_key``; the CLI
    warns). Raises OverrideError for a malformed or repeated item or a key outside the recipe."""
    from ..core.keyvalue import KeyValueError, parse_pairs, spec_key, yaml_value

    try:
        pairs = parse_pairs(items, option="--set", example="recipe.train.lr=0.02", dotted=True,
                            empty_value=True)
    except KeyValueError as exc:
        raise OverrideError(str(exc)) from None
    out: dict[str, Any] = {}
    for written, raw in pairs.items():
        key, _ = spec_key(written)
        block, _, sub = key.partition(".")
        if block != "recipe":
            how = ("evaluation settings follow the paper's protocol and cannot be overridden"
                   if block == "eval" else f"{block}.* values are not recipe values")
            raise OverrideError(f"--set {written}: {how}; --set changes recipe values "
                                "(recipe.<path>, e.g. recipe.train.lr, recipe.train.epochs, "
                                "recipe.input.height); a declared alternative runs with "
                                f"--variant {written}=<alternative>")
        if sub in out:
            raise OverrideError(f"--set {key} is given twice; give each key once")
        try:
            value = yaml_value("--set", key, raw)
        except KeyValueError as exc:
            raise OverrideError(str(exc)) from None
        if ";" in key or ";" in spell(value):
            raise OverrideError(f"--set {key}: ';' is not allowed in keys or values")
        out[sub] = value
    return out


def apply_overrides(values: dict, overrides: dict[str, Any]) -> dict:
    """A copy of the recipe ``values`` with each dotted key of ``overrides`` set (missing
    intermediate mappings are created; an integer part indexes a list)."""
    out = copy.deepcopy(values)
    for key, value in overrides.items():
        node: Any = out
        parts = key.split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                try:
                    idx = int(part)
                    node[idx]  # noqa: B018 — bounds check
                except (ValueError, IndexError):
                    raise OverrideError(f"--set recipe.{key}: "
                                        f"{'.'.join(parts[:i]) or 'recipe'} is a "
                                        f"list of {len(node)}; use an index 0..{len(node) - 1}"
                                        ) from None
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
                continue
            if not isinstance(node, dict):
                raise OverrideError(f"--set recipe.{key}: {'.'.join(parts[:i])} is a value "
                                    f"({node!r}), not a group of keys")
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return out


def validate_overrides(spec: Any, rows: Iterable[Any], overrides: dict[str, Any], *,
                       smoke: bool = False) -> None:
    """Check ``overrides`` against the ``Recipe`` model of every given row's method, like the
    spec itself is checked. Raises OverrideError naming the key, the rows and the allowed keys
    or values. Rows whose method is not registered are left to the runner (a not_run cell)."""
    from ..core.errors import RegistryError
    from ..core.registry import METHODS
    from ..spec.messages import pydantic_errors
    from ..spec.recipes import resolved_recipe

    if not overrides:
        return
    problems: dict[str, list[str]] = {}
    for row in rows:
        try:
            method = METHODS.get(row.method)
        except RegistryError:
            continue
        values, _ = resolved_recipe(spec, row, smoke=smoke)
        try:
            method.Recipe.model_validate(apply_overrides(values, overrides))
        except ValidationError as exc:
            for loc, msg in pydantic_errors(exc, (), method.Recipe, values):
                dotted = ".".join(str(p) for p in loc)
                key = next((k for k in overrides if dotted == k or dotted.startswith(k + ".")
                            or k.startswith(dotted + ".")), dotted)
                problems.setdefault(f"--set recipe.{key} ({dotted}): {msg}", []).append(row.name)
    if problems:
        lines = [f"  {p} [row(s): {', '.join(dict.fromkeys(r))}]" for p, r in problems.items()]
        raise OverrideError(f"invalid --set override(s) for {spec.path}:\n" + "\n".join(lines))


def overrides_json(overrides: dict[str, Any]) -> str | None:
    """The ``overrides`` CSV column: sorted JSON, or None for none."""
    return json.dumps(overrides, sort_keys=True) if overrides else None


def overrides_from_json(text: Any) -> dict[str, Any]:
    """Inverse of ``overrides_json`` ({} for an empty field)."""
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        out = json.loads(text)
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}
