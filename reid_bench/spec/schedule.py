"""Schedule warnings a spec or a run's ``--set`` can cause without being invalid: a learning-rate
step at or beyond its stage's epochs never happens (``--set recipe.train.epochs=4`` with
``lr_steps: [5]`` silently trains without decay). ``reid-bench validate`` prints them and
``run`` logs them at plan time; neither refuses the spec."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ValidationError


def _optims(model: Any, path: str = "recipe") -> Iterator[tuple[str, Any]]:
    """(dotted path, OptimRecipe) of every training stage inside a validated recipe model."""
    from ..engine.recipe import OptimRecipe

    if isinstance(model, OptimRecipe):
        yield path, model
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from _optims(getattr(model, name), f"{path}.{name}")


def lr_step_problems(recipe: BaseModel) -> list[str]:
    """Each stage of a validated ``recipe`` whose ``lr_steps`` hold an epoch at or beyond its
    ``epochs`` (0-based: a step at epoch E of an E-epoch stage never applies)."""
    out = []
    for path, optim in _optims(recipe):
        late = [s for s in optim.lr_steps if s >= optim.epochs]
        if late:
            out.append(f"{path}.lr_steps {list(optim.lr_steps)}: step(s) {late} at or beyond "
                       f"{path}.epochs={optim.epochs} never apply (no decay there); lower them "
                       "or raise the epochs")
    return out


def schedule_warnings(spec: Any, rows: Iterable[Any] | None = None,
                      overrides: dict[str, Any] | None = None, *,
                      tiers: Iterable[bool] = (False, True)) -> list[str]:
    """Warnings for the runnable ``rows`` (default: all) of ``spec`` under ``overrides``, for
    the plain recipe and/or the ``--smoke`` one (``tiers``: smoke flags). Rows whose method is
    unknown or whose recipe does not validate are left to validation."""
    from ..core.registry import METHODS
    from ..table.overrides import apply_overrides
    from .recipes import resolved_recipe

    out: dict[str, list[str]] = {}
    for row in (spec.rows if rows is None else rows):
        if not row.runnable or row.method not in METHODS:
            continue
        for smoke in tiers:
            values, _ = resolved_recipe(spec, row, smoke=smoke)
            try:
                recipe = METHODS.get(row.method).Recipe.model_validate(
                    apply_overrides(values, overrides or {}))
            except ValidationError:
                continue
            for p in lr_step_problems(recipe):
                out.setdefault(p + (" (--smoke recipe)" if smoke else ""), []).append(row.name)
    return [f"{spec.path}: {p} [row(s): {', '.join(dict.fromkeys(r))}]" for p, r in out.items()]
