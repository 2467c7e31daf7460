"""Old spellings of options, kept working for one release with a warning.

A renamed option keeps its old spelling as a hidden ``DeprecatedOption`` beside the new one
(``old_spelling``): the old spelling parses exactly like the new one (same type, same checks),
prints ``warning: `--brief` is deprecated; use `--quiet` (the old spelling goes in the next
release)`` on stderr, and its value is handed to the command as the new parameter's
(``Command.parse_args``). Giving both spellings with different values is a usage error. A
multiple option (``--specs``) or a positional list adds the old spelling's values to the new
one's. ``tests/test_cli_grammar.py`` walks the command tree for every ``DeprecatedOption`` and
checks each still works and warns.
"""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from .errors import warn

NOTICE = "`{old}` is deprecated; use {new} (the old spelling goes in the next release)"
_SEEN = "reid_bench.cli.deprecation.seen"  # ctx.meta key: (option, value) of old spellings given


def notice(old: str, new: str) -> None:
    """Print the deprecation warning for ``old`` (replaced by ``new``: an option, quoted, or
    words such as "the SPECS arguments") on stderr."""
    warn(NOTICE.format(old=old, new=f"`{new}`" if new.startswith("-") else new))


class DeprecatedOption(click.Option):
    """A hidden option: the old spelling of the parameter named ``dest``, written ``new`` now."""

    def __init__(self, param_decls: Any, *, new: str, dest: str, **attrs: Any):
        attrs.setdefault("help", f"Old spelling of {new} (deprecated).")
        super().__init__(param_decls, hidden=True, expose_value=False,
                         callback=self._given, **attrs)
        self.new, self.dest = new, dest

    def _given(self, ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE:
            notice(self.opts[0], self.new)
            ctx.meta.setdefault(_SEEN, []).append((self, value))
        return value


def old_spelling(old: str, new: str, dest: str, **attrs: Any):
    """Decorator: ``old`` (e.g. ``--brief``) as a deprecated spelling of option ``new``
    (``--quiet``) whose parameter is ``dest`` (``quiet``). ``attrs`` are the option's click
    settings (``is_flag``, ``type``, ``multiple``…), normally the new option's."""
    name = "deprecated_" + old.lstrip("-").replace("-", "_")
    return click.option(old, name, cls=DeprecatedOption, new=new, dest=dest, **attrs)


class Command(click.Command):
    """A click command whose old option spellings (``DeprecatedOption``) set the new
    parameters."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for opt, value in ctx.meta.pop(_SEEN, []):
            _merge(ctx, self, opt, value)
        return rest


def _merge(ctx: click.Context, command: click.Command, opt: DeprecatedOption, value: Any) -> None:
    target = next(p for p in command.params if p.name == opt.dest)
    current = ctx.params.get(opt.dest)
    if getattr(target, "multiple", False) or target.nargs == -1:
        ctx.params[opt.dest] = tuple(current or ()) + tuple(value or ())
        return
    if ctx.get_parameter_source(opt.dest) == ParameterSource.COMMANDLINE and current != value:
        raise click.UsageError(f"{opt.opts[0]} is the old spelling of {opt.new}: give only "
                               f"{opt.new}", ctx)
    ctx.params[opt.dest] = value
    ctx.set_parameter_source(opt.dest, ParameterSource.COMMANDLINE)


class Group(click.Group):
    """A click group whose subcommands are ``Command``s."""

    command_class = Command


def spec_key_spelling(ctx: click.Context, param: click.Parameter, items: Any) -> Any:
    """Click callback of ``--set`` / ``--variant``: warn for each KEY in the old spelling
    without its block (``train.lr=…`` for ``recipe.train.lr=…``, ``core.keyvalue.spec_key``);
    the items pass on unchanged (the library reads both spellings)."""
    from ..core.keyvalue import spec_key

    for item in items or ():
        key, eq, _ = str(item).partition("=")
        key = key.strip()
        if eq and key:
            canonical, old = spec_key(key)
            if old:
                notice(f"{param.opts[0]} {key}=…", f"`{param.opts[0]} {canonical}=…`")
    return items
