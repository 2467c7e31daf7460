"""Traced values: ``{value: X, source: "Sec. N"}`` or ``{value: X, assumed: "why"}``.

Each leaf of a ``recipe:`` block is traced; an assumed value may add ``replaces:`` (the paper
text it stands in for) and ``alternatives:`` (other readings that ``reid-bench run --variant
KEY=VALUE`` can try, see reid_bench.table.variants). ``params``, ``eval`` and loader ``options`` may be
traced the same way (plain values are allowed there). ``untrace`` takes a tree apart into its
plain values and their provenance.
"""

from __future__ import annotations

from typing import Any

from ..core.yamlio import KeyPath

TRACED_KEYS = ("value", "source", "assumed", "alternatives", "replaces")


def untrace(tree: Any, path: KeyPath = (), *,
                 require: bool = True) -> tuple[Any, dict[str, dict], list[tuple]]:
    """Strip provenance from a recipe tree.

    Returns ``(values, provenance, errors)``: ``values`` is the same tree with each traced leaf
    replaced by its value; ``provenance`` maps the dotted key to ``{"source": ...}`` or
    ``{"assumed": ..., "alternatives": [...], "replaces": "paper text"}`` (the last two only
    when given); ``errors`` lists ``(key_path, message)`` for malformed traced values and, with
    ``require``, for untraced leaves (``params`` and ``eval`` may mix plain and traced values).
    """
    prov: dict[str, dict] = {}
    errors: list[tuple] = []

    def walk(node: Any, p: KeyPath) -> Any:
        if isinstance(node, dict) and "value" in node:
            extra = set(node) - set(TRACED_KEYS)
            has = [k for k in ("source", "assumed") if node.get(k)]
            if extra:
                errors.append((p, f"unknown key(s) {sorted(extra)} in a traced value; allowed: "
                                  f"{', '.join(TRACED_KEYS)}"))
            if len(has) != 1:
                errors.append((p, "a traced value needs exactly one of 'source' (the paper "
                                  "section) or 'assumed' (why we chose it)"))
            else:
                entry = {has[0]: node[has[0]]}
                errors.extend(_check_alternatives(node, p))
                for k in ("alternatives", "replaces"):
                    if node.get(k) is not None:
                        entry[k] = node[k]
                prov[".".join(map(str, p))] = entry
            return node["value"]
        if isinstance(node, dict) and (require or p == path):
            return {k: walk(v, p + (k,)) for k, v in node.items()}
        if require:
            errors.append((p, "recipe values must be traced: write {value: X, source: \"Sec. N\"} "
                              "or {value: X, assumed: \"reason\"}"))
        return node

    return walk(tree, path), prov, errors


def _check_alternatives(node: dict, p: KeyPath) -> list[tuple]:
    """``alternatives`` (other readings a variant run may try) and ``replaces`` (the paper text
    the assumption stands in for) belong to assumed values only."""
    errs: list[tuple] = []
    alts = node.get("alternatives")
    if alts is not None:
        if not node.get("assumed"):
            errs.append((p + ("alternatives",), "only an 'assumed' value may list alternatives "
                                                "(a paper-stated value has none)"))
        if not isinstance(alts, list) or not alts:
            errs.append((p + ("alternatives",), "alternatives must be a non-empty list of "
                                                "values, e.g. alternatives: [ratio]"))
        elif node["value"] in alts:
            errs.append((p + ("alternatives",), f"the assumed value {node['value']!r} is listed "
                                                "among its own alternatives"))
    if node.get("replaces") is not None and not node.get("assumed"):
        errs.append((p + ("replaces",), "'replaces' (the paper text an assumption stands in "
                                        "for) belongs to an assumed value"))
    return errs


def strip_traced_settings(data: dict) -> tuple[list[dict], list[tuple]]:
    """Replace traced values in ``datasets.<col>.eval``, ``datasets.<col>.options`` (loader
    options), ``rows[i].params`` and ``rows[i].eval`` of raw spec ``data`` (in place) by their
    plain values.

    These blocks take plain values (paper-stated by the spec's comments) or traced ones like
    the recipe (``{value: standard, assumed: "...", alternatives: [market_matlab]}``). Returns
    ``(entries, errors)``: one entry per traced value, ``{"scope": "column"|"row", "owner":
    column id or row name, "key": "eval.ap" | "params.reduction_mode" | "eval.options.x",
    "value": ..., **provenance}``."""
    entries: list[dict] = []
    errors: list[tuple] = []

    def strip(block: Any, kp: KeyPath, scope: str, owner: str, prefix: str) -> None:
        if not isinstance(block, dict):
            return
        for name in list(block):
            sub = block[name]
            if name == "options" and prefix == "eval" and isinstance(sub, dict):
                strip(sub, kp + (name,), scope, owner, "eval.options")
                continue
            if not (isinstance(sub, dict) and "value" in sub):
                continue
            value, prov, errs = untrace(sub, kp + (name,), require=False)
            errors.extend(errs)
            block[name] = value
            p = prov.get(".".join(map(str, kp + (name,))))
            if p:
                entries.append({"scope": scope, "owner": owner, "key": f"{prefix}.{name}",
                                "value": value, **p})

    for ds, col in (data.get("datasets") or {}).items():
        if isinstance(col, dict):
            strip(col.get("eval"), ("datasets", ds, "eval"), "column", str(ds), "eval")
            strip(col.get("options"), ("datasets", ds, "options"), "column", str(ds), "options")
    for i, row in enumerate(data.get("rows") or []):
        if isinstance(row, dict):
            name = str(row.get("name", i))
            strip(row.get("params"), ("rows", i, "params"), "row", name, "params")
            strip(row.get("eval"), ("rows", i, "eval"), "row", name, "eval")
    return entries, errors
