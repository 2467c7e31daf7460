"""Read one paper-table spec: YAML → a validated, typed ``Spec``.

One YAML file per paper table (``papers/<paper>/tableN.yaml``). Validation happens once, here;
every error names the file, the line, the key path and what is allowed. Unknown keys are errors
(with the nearest valid key). Recipe values must be traced (reid_bench.spec.traced).
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import ValidationError

from ..core.errors import SpecError
from ..core.hashing import short_hash
from ..core.yamlio import load_yaml_with_lines
from .checks import check_claims, check_columns, check_rows
from .messages import format_errors, pydantic_errors
from .names import check_names
from .same_as import resolve_same_as
from .schema import Spec
from .traced import strip_traced_settings, untrace


def load_spec(path: str | Path, *, check_methods: bool = False,
              same_as: bool = True, complete: bool = False) -> Spec:
    """Read and validate one spec file.

    Checks the schema, that every row publishes a number (or explicit ``null`` for a dash) for
    every metric of every column it belongs to, that recipe values are traced and that each
    runnable row's method params and resolved recipe validate against its method. With
    ``check_methods`` an unregistered method is an error (``validate``); without, the runner
    records such rows as failed cells. ``same_as`` rows are resolved against the specs they
    name (``spec/same_as.py``; ``same_as=False``: left as written, how a referenced spec is
    read). With ``complete`` (``validate``, for the specs of the project's ``papers/``)
    every recipe value a row's method reads must be traced: one left to the Recipe's
    default is an error naming it (``spec.defaults``). Raises SpecError listing every
    problem found.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found. Specs live in papers/<paper>/tableN.yaml.")
    data, lines = load_yaml_with_lines(path)
    if not isinstance(data, dict):
        keys = [k for k in Spec.model_fields if k not in ("path", "spec_hash")]
        raise SpecError(f"{path}:1: a spec must be a YAML mapping with keys {', '.join(keys)}")
    for forbidden in ("path", "spec_hash", "traced"):
        if forbidden in data:
            raise SpecError(format_errors(path, lines,
                                          [((forbidden,), "reserved key; remove it")]))
    for i, row in enumerate(data.get("rows") or []):
        if isinstance(row, dict) and "shared" in row:
            raise SpecError(format_errors(path, lines, [(("rows", i, "shared"), "reserved key "
                                                         "(filled from same_as); remove it")]))
    traced, errors = strip_traced_settings(data)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_errors(path, lines, errors + pydantic_errors(exc, (), Spec, data))
                        ) from None
    if spec.table.id != path.stem:
        errors.append((("table", "id"), f"table id {spec.table.id!r} does not match the file "
                                        f"name {path.name!r}"))
    if path.parent.name != spec.paper.id:
        errors.append((("paper", "id"), f"paper id {spec.paper.id!r} does not match the folder "
                                        f"{path.parent.name!r}"))
    _, _, errs = untrace(spec.recipe, ("recipe",))
    errors += errs
    if same_as:
        spec, errs = resolve_same_as(spec, path, _reference)
        errors += errs
    errors += check_names(spec, lines)
    errors += check_columns(spec)
    row_errors, names = check_rows(spec, check_methods)
    errors += row_errors
    errors += check_claims(spec, names)
    spec = spec.model_copy(update={"traced": traced})
    from .alternatives import check_alternatives  # lazy: it imports this package

    errors += check_alternatives(spec)
    if complete and not errors:
        from .defaults import untraced_errors

        errors += untraced_errors(spec)
    if errors:
        raise SpecError(format_errors(path, lines, errors))
    text = path.read_bytes()
    return spec.model_copy(update={"path": str(path),
                                   "spec_hash": short_hash(text)})


def _reference(path: Path) -> Spec:
    """A spec a ``same_as`` names, read as written (its own same_as unresolved); one read per
    file version per process (every spec of a paper names the same few)."""
    st = path.stat()
    return _reference_at(str(path.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _reference_at(path: str, mtime_ns: int, size: int) -> Spec:
    del mtime_ns, size  # part of the cache key only
    return load_spec(path, same_as=False)
