"""Read one paper-table spec: YAML → a validated, typed ``Spec``.

One YAML file per paper table (``papers/<paper>/tableN.yaml``). Validation happens once, here;
every error names the file, the line, the key path and what is allowed. Unknown keys are errors
(with the nearest valid key). Recipe values must be traced (reid_bench.spec.traced).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from ..errors import SpecError
from ..yamlio import load_yaml_with_lines
from .checks import check_claims, check_columns, check_rows
from .messages import format_errors, pydantic_errors
from .names import check_names
from .schema import Spec
from .traced import strip_traced_settings, untrace


def load_spec(path: str | Path, *, check_methods: bool = False) -> Spec:
    """Read and validate one spec file.

    Checks the schema, that every row publishes a number (or explicit ``null`` for a dash) for
    every metric of every column it belongs to, that recipe values are traced and that each
    runnable row's method params and resolved recipe validate against its method. With
    ``check_methods`` an unregistered method is an error (``validate``); without, the runner
    records such rows as failed cells. Raises SpecError listing every problem found.
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
    errors += check_names(spec, lines)
    errors += check_columns(spec)
    row_errors, names = check_rows(spec, check_methods)
    errors += row_errors
    errors += check_claims(spec, names)
    spec = spec.model_copy(update={"traced": traced})
    from ..alternatives import check_alternatives  # lazy: it imports this package

    errors += check_alternatives(spec)
    if errors:
        raise SpecError(format_errors(path, lines, errors))
    text = path.read_bytes()
    return spec.model_copy(update={"path": str(path),
                                   "spec_hash": hashlib.sha256(text).hexdigest()[:16]})
