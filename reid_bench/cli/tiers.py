"""``--tier`` and its shorthands, one grammar for ``run`` and ``status``.

``--tier {full,smoke,shakedown,smoke_recipe}`` names the tier; ``--smoke``, ``--shakedown`` and
``--smoke-recipe`` are short for ``--tier smoke`` / ``shakedown`` / ``smoke_recipe`` (kept: the
README's first command is ``run … --smoke``). Two that name different tiers are a usage error.
"""

from __future__ import annotations

import click

from ..store.columns import TIERS  # the tier names: one list, the results schema's

SHORTHANDS = {"smoke": "--smoke", "shakedown": "--shakedown", "smoke_recipe": "--smoke-recipe"}


def tier_options(tier_help: str, smoke_help: str, shakedown_help: str, smoke_recipe_help: str):
    """Decorator: ``--tier`` (default None: the command's own default) and the three
    shorthand flags, with the command's help for each."""
    def decorate(f):
        f = click.option("--smoke-recipe", "smoke_recipe", is_flag=True, help=smoke_recipe_help)(f)
        f = click.option("--shakedown", "shakedown", is_flag=True, help=shakedown_help)(f)
        f = click.option("--smoke", "smoke", is_flag=True, help=smoke_help)(f)
        return click.option("--tier", "tier", type=click.Choice(TIERS), default=None,
                            help=tier_help)(f)
    return decorate


def chosen_tier(tier: str | None, smoke: bool = False, shakedown: bool = False,
                smoke_recipe: bool = False) -> str | None:
    """The tier ``--tier`` and the shorthands name together (None: none given). Raises
    click.UsageError when they name different tiers."""
    named = [(flag, t) for t, flag in SHORTHANDS.items()
             if {"smoke": smoke, "shakedown": shakedown, "smoke_recipe": smoke_recipe}[t]]
    if tier is not None:
        named.append((f"--tier {tier}", tier))
    if len({t for _, t in named}) > 1:
        raise click.UsageError(f"{' and '.join(f for f, _ in named)} exclude each other: "
                               f"choose one tier ({', '.join(TIERS)})")
    return named[0][1] if named else None
