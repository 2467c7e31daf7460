"""Assumption variants: re-run rows with another reading of a value the paper does not state.

Every value of a spec is traced (reid_bench.spec): ``{value: X, source: "Sec. N"}`` when the paper
states it, ``{value: X, assumed: "why", alternatives: [Y, Z]}`` when it is ours. An alternative is
another defensible reading. ``reid-bench run SPEC --variant KEY=Y`` runs the rows whose KEY is an
assumed value with Y among its alternatives, with Y in its place; their results are stored beside
the canonical ones under the variant part ``variant:KEY=Y`` (results column ``variant``), so the
report can show how a number and its verdict move under the other reading.

Keys name the block the value lives in: ``recipe.<dotted path>`` (table or row recipe),
``params.<name>`` (a row's method param), ``eval.<field>`` (a column's or row's evaluation:
``eval.ap``, ``eval.distance``, ``eval.rerank``, ``eval.options.<name>``), ``options.<name>`` (a
column's dataset loader option, e.g. CUHK03's ``query_view``). Evaluation-only
variants change nothing the trained-model cache is keyed by, so they reuse the trained model.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import SpecError
from ..spec import Row, Spec, deep_merge
from ..spec.recipes import recipe_tree, smoke_tree
from .overrides import compose_variant, spell, variant_parts
from .traced_values import traced_values

PREFIX = "variant:"


# --------------------------------------------------------------------------------------------
# Variant strings (results column ``variant``)


def variant_part(key: str, value: Any) -> str:
    """``variant:<key>=<value>``: the part of the results ``variant`` an alternative adds."""
    return f"{PREFIX}{key}={spell(value)}"


def variant_choices(variant: str) -> list[tuple[str, str]]:
    """``(key, value)`` of each assumption-variant part of ``variant``."""
    out = []
    for p in variant_parts(variant):
        if p.startswith(PREFIX):
            k, _, v = p[len(PREFIX):].partition("=")
            out.append((k, v))
    return out


# --------------------------------------------------------------------------------------------
# Applying a variant


def _same(alt: Any, wanted: Any, raw: str) -> bool:
    if isinstance(alt, bool) or isinstance(wanted, bool):
        return alt is wanted or spell(alt) == raw
    return alt == wanted or spell(alt) == raw or str(alt) == raw


def parse_choice(text: str) -> tuple[str, str, Any]:
    """``"KEY=VALUE"`` → (key in the one spelling, raw value text, value parsed as YAML, else
    the text). ``train.lr=…`` is read as ``recipe.train.lr=…`` (``core.keyvalue.spec_key``)."""
    from ..core.keyvalue import KeyValueError, parse_pairs, spec_key, yaml_value

    try:
        ((key, raw),) = parse_pairs([text], option="--variant",
                                    example="params.reduction_mode=ratio").items()
    except KeyValueError as exc:
        raise SpecError(str(exc)) from None
    key, raw = spec_key(key)[0], raw.strip()
    return key, raw, yaml_value("--variant", key, raw, strict=False)


def available(spec: Spec) -> list[str]:
    """Every ``KEY=VALUE`` a ``--variant`` of ``spec`` may name."""
    out: list[str] = []
    for t in traced_values(spec, defaults=False):
        for a in t.alternatives:
            s = f"{t.key}={spell(a)}"
            if s not in out:
                out.append(s)
    return out


def nest(path: tuple, leaf: Any) -> dict:
    """``leaf`` under the nested keys ``path`` (``("a", "b")`` → ``{"a": {"b": leaf}}``)."""
    out: Any = leaf
    for k in reversed(path):
        out = {k: out}
    return out


def _pick(tree: Any, path: tuple) -> Any:
    for k in path:
        if not isinstance(tree, dict) or k not in tree:
            return None
        tree = tree[k]
    return tree


def apply_variant(spec: Spec, text: str, *,
                  smoke: bool = False) -> tuple[Spec, str, set[tuple[str, str]]]:
    """``spec`` with the alternative ``text`` ("KEY=VALUE") in place of the assumed value.

    Returns ``(new spec, variant part, affected (row, column) pairs)``. Raises SpecError naming
    the allowed ``KEY=VALUE`` choices when KEY is not an assumed value with VALUE among its
    alternatives, and when under ``smoke`` the smoke recipe overrides KEY (the variant would
    change nothing)."""
    key, raw, wanted = parse_choice(text)
    hits = [t for t in traced_values(spec, defaults=False) if t.key == key and t.assumed
            and any(_same(a, wanted, raw) for a in t.alternatives)]
    if not hits:
        allowed = available(spec)
        known = [t for t in traced_values(spec, defaults=False) if t.key == key]
        why = (f"{key!r} is not an assumed value with alternatives" if not any(
            t.alternatives for t in known) else f"{raw!r} is not among the alternatives of "
            f"{key!r}")
        raise SpecError(f"{spec.path}: --variant {text}: {why}. Allowed: "
                        f"{', '.join(allowed) if allowed else 'none (this spec lists no alternatives)'}")
    alt = next(a for a in hits[0].alternatives if _same(a, wanted, raw))
    part = variant_part(key, alt)
    block, sub = key.split(".", 1)
    rows = {r.name: r for r in spec.rows}
    new_rows: dict[str, Row] = {}
    datasets = dict(spec.datasets)
    affected: set[tuple[str, str]] = set()

    def cols(r: Row) -> list[str]:
        return list(r.datasets) if r.datasets is not None else list(spec.datasets)

    if block == "recipe":
        path = tuple(sub.split("."))
        for r in spec.rows:
            if not r.runnable:
                continue
            leaf = _pick(recipe_tree(spec, r), path)
            if not (isinstance(leaf, dict) and leaf.get("assumed")
                    and any(_same(a, alt, spell(alt)) for a in leaf.get("alternatives") or ())):
                continue
            if _unused(r, path):
                continue  # the row's method never reads it: same training, not a variant
            if smoke and _pick(smoke_tree(spec, r), path) is not None:
                raise SpecError(f"{spec.path}: --variant {text}: under --smoke the smoke recipe "
                                f"sets {sub!r} for row {r.name!r}, so this variant would change "
                                "nothing; run it without --smoke")
            new = {"value": alt, "assumed": f"variant of the assumption: {leaf['assumed']}"}
            new_rows[r.name] = r.model_copy(update={"recipe": deep_merge(r.recipe,
                                                                         nest(path, new))})
            affected |= {(r.name, ds) for ds in cols(r)}
    else:
        for t in hits:
            if t.scope == "row":
                r = new_rows.get(t.owner, rows[t.owner])
                if block == "params":
                    upd = {"params": {**r.params, sub: alt}}
                else:
                    upd = {"eval": set_eval(r.eval, sub, alt)}
                new_rows[t.owner] = r.model_copy(update=upd)
                affected |= {(t.owner, ds) for ds in cols(rows[t.owner])}
            elif block == "options":  # a column's dataset loader option
                if smoke:
                    raise SpecError(f"{spec.path}: --variant {text}: under --smoke every column "
                                    "loads the synthetic stand-in, so a dataset option changes "
                                    "nothing; run it without --smoke")
                col = datasets[t.owner]
                datasets[t.owner] = col.model_copy(update={"options": {**col.options, sub: alt}})
                affected |= {(r.name, t.owner) for r in spec.rows
                             if r.runnable and t.owner in cols(r)}
            else:  # a column's evaluation
                col = datasets[t.owner]
                datasets[t.owner] = col.model_copy(update={"eval": set_eval(col.eval, sub, alt)})
                for r in spec.rows:
                    # A row with its own setting of this field is not evaluated with the column's.
                    own = getattr(r.eval, sub, None) if "." not in sub else None
                    # A same_as row is evaluated as the row it names (spec/same_as.py), not
                    # with this column's settings: the variant would re-run the same numbers.
                    borrowed = r.shared is not None and t.owner in r.shared.eval
                    if r.runnable and t.owner in cols(r) and own is None and not borrowed:
                        affected.add((r.name, t.owner))
    rows_out = [new_rows.get(r.name, r) for r in spec.rows]
    traced = [({**e, "value": alt} if any(t.scope == e["scope"] and t.owner == e["owner"]
                                          and t.key == e["key"] for t in hits) else e)
              for e in spec.traced]
    new_spec = spec.model_copy(update={"rows": rows_out, "datasets": datasets, "traced": traced})
    return new_spec, part, affected


def _unused(row: Row, path: tuple) -> bool:
    """Whether ``row``'s method, with the row's params, never reads recipe key ``path``."""
    from ..core.registry import METHODS

    if row.method not in METHODS:
        return False
    from ..spec.defaults import is_unused

    method = METHODS.get(row.method)()
    return is_unused(method.recipe_unused(method.Params.model_validate(row.params)),
                     ".".join(path))


def set_eval(ev: Any, field_path: str, value: Any) -> Any:
    """A copy of an eval settings model with ``field_path`` (``ap`` or ``options.x``) set; the
    field is re-validated by its model (e.g. ``rerank`` from a dict)."""
    data = ev.model_dump()
    if field_path.startswith("options."):
        data["options"] = {**data["options"], field_path.split(".", 1)[1]: value}
    else:
        data[field_path] = value
    return type(ev).model_validate(data)


def apply_variants(spec: Spec, texts: list[str], cells: list, *,
                   smoke: bool = False) -> tuple[Spec, list]:
    """Apply every ``--variant`` in ``texts`` and keep the planned ``cells`` it affects, each
    re-made with the new spec's row and its ``variant`` parts (a cell gets the parts of the
    variants that change it, composed with any it already has). Raises SpecError when no
    planned cell is affected (e.g. ``--rows`` names none of the rows the variant changes)."""
    from .plan import Cell

    parts_of: dict[tuple[str, str], list[str]] = {}
    for text in texts:
        spec, part, affected = apply_variant(spec, text, smoke=smoke)
        for rc in affected:
            parts_of.setdefault(rc, []).append(part)
    rows = {r.name: r for r in spec.rows}
    out = []
    for c in cells:
        parts = parts_of.get((c.row.name, c.dataset))
        if parts:
            out.append(Cell(rows[c.row.name], c.dataset, c.seed, c.tier, c.split,
                            compose_variant(variant_parts(c.variant) + parts)))
    if not out:
        changed = sorted({r for r, _ in parts_of})
        raise SpecError(f"{spec.path}: --variant {', '.join(texts)} changes none of the planned "
                        f"cells; it applies to row(s) {changed or 'none'}")
    return spec, out
