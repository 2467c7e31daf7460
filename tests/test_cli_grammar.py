"""One CLI grammar (docs/cli.md): help on every option and argument, one ``error:`` prefix,
every old option spelling still working with a deprecation warning, ``--tier`` and its
shorthands, ``--version`` and ``--help`` without torch, and ``--set``/``--variant`` keys in the
spec's spelling storing exactly what the old spelling stored."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reid_bench.cli import main
from reid_bench.cli.deprecation import DeprecatedOption
from reid_bench.cli.tiers import SHORTHANDS, TIERS

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "reid_bench"


def _commands(group: click.Group = main, path: tuple = ()) -> list[tuple[str, click.Command]]:
    """Every command of the CLI tree (groups included), as ("weights list", command)."""
    out = [(" ".join(path), group)]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += _commands(cmd, path + (name,))
        else:
            out.append((" ".join(path + (name,)), cmd))
    return out


COMMANDS = _commands()


def test_the_tree_walker_sees_every_command():
    names = {n for n, _ in COMMANDS}
    assert {"run", "status", "report", "weights list", "weights fetch", "data check",
            "verify", "curves", "compare", "validate", "published"} <= names


def test_every_option_and_argument_has_help():
    """An option without ``help=`` or an argument its command's docstring does not name (by
    its metavar, e.g. SPECS) is a flag a user has to guess."""
    missing = []
    for name, cmd in COMMANDS:
        doc = cmd.help or ""
        for p in cmd.params:
            if isinstance(p, click.Option):
                if not (p.help or "").strip():
                    missing.append(f"{name or 'reid-bench'} {p.opts[0]}")
            else:
                word = (p.metavar or p.name.upper()).strip("[].")
                if word not in doc:
                    missing.append(f"{name} argument {word} (not in the docstring)")
    assert not missing, f"{len(missing)} without help:\n" + "\n".join(missing)


# --------------------------------------------------------------------------------------------
# Old spellings: every DeprecatedOption of the tree, each proven to set what the new one sets.

DEPRECATED = [(name, cmd, p) for name, cmd in COMMANDS for p in cmd.params
              if isinstance(p, DeprecatedOption)]
# What this release renamed (docs/cli.md); the walker must find exactly these.
RENAMED = {("run", "--seeds"), ("run", "--pretrained"), ("run", "--max-batch"),
           ("status", "--seeds"), ("status", "--brief"), ("report", "--specs"),
           ("weights list", "--specs")}


def test_every_renamed_option_keeps_its_old_spelling():
    assert {(name, p.opts[0]) for name, _, p in DEPRECATED} == RENAMED


def _value(p: click.Option) -> list[str]:
    if p.is_flag:
        return []
    if isinstance(p.type, click.Choice):
        return [list(p.type.choices)[-1]]
    if isinstance(p.type, click.IntRange):
        return ["3"]
    return ["papers/fmn/table5.yaml"]


def _parsed(cmd: click.Command, args: list[str], monkeypatch) -> tuple[dict, str, int]:
    """The parameters ``cmd``'s function would receive for ``args`` (the function itself is
    not run), its stderr and exit code."""
    seen: dict = {}
    monkeypatch.setattr(cmd, "callback", lambda **kw: seen.update(kw))
    required = [a for p in cmd.params if isinstance(p, click.Argument) and p.required
                for a in ["papers/fmn/table5.yaml"]]
    res = CliRunner().invoke(cmd, required + args)
    return seen, res.stderr, res.exit_code


@pytest.mark.parametrize("name,cmd,old", DEPRECATED,
                         ids=[f"{n}{p.opts[0]}" for n, _, p in DEPRECATED])
def test_an_old_spelling_works_and_warns(name, cmd, old, monkeypatch):
    value = _value(old)
    new = next(p for p in cmd.params if p.name == old.dest)
    new_args = ([new.opts[0]] if isinstance(new, click.Option) else []) + value
    got_new, err_new, rc_new = _parsed(cmd, new_args, monkeypatch)
    got_old, err_old, rc_old = _parsed(cmd, [old.opts[0]] + value, monkeypatch)
    assert rc_new == rc_old == 0, err_old
    assert got_old == got_new and got_old[old.dest] != new.get_default(click.Context(cmd))
    assert f"warning: `{old.opts[0]}` is deprecated; use " in err_old
    assert "deprecated" not in err_new
    if isinstance(new, click.Option) and not new.multiple and not new.is_flag:
        # Both spellings with different values: one is a mistake, refused.
        other = ["2"] if value == ["3"] else ["spec"]
        _, err, rc = _parsed(cmd, new_args + [old.opts[0]] + other, monkeypatch)
        assert rc == 2 and f"{old.opts[0]} is the old spelling of {new.opts[0]}" in err


# --------------------------------------------------------------------------------------------
# --tier and its shorthands

TIER_COMMANDS = [(n, c) for n, c in COMMANDS if n in ("run", "status")]


@pytest.mark.parametrize("name,cmd", TIER_COMMANDS, ids=[n for n, _ in TIER_COMMANDS])
@pytest.mark.parametrize("tier", TIERS)
def test_a_shorthand_is_its_tier_and_conflicts_are_refused(name, cmd, tier, monkeypatch):
    from reid_bench.cli.tiers import chosen_tier

    for other, flag in SHORTHANDS.items():
        if other == tier:
            continue
        # The command itself runs: the conflict is refused before any cell is planned.
        res = CliRunner().invoke(main, [name, "papers/fmn/table5.yaml", "--tier", tier, flag]
                                 + (["--dry-run"] if name == "run" else []))
        assert res.exit_code == 2 and "exclude each other" in res.stderr, res.output
    got, err, rc = _parsed(cmd, ["--tier", tier], monkeypatch)
    assert rc == 0 and chosen_tier(got["tier"], got["smoke"], got["shakedown"],
                                   got["smoke_recipe"]) == tier
    if tier in SHORTHANDS:
        got, err, rc = _parsed(cmd, [SHORTHANDS[tier]], monkeypatch)
        assert rc == 0 and chosen_tier(got["tier"], got["smoke"], got["shakedown"],
                                       got["smoke_recipe"]) == tier


# --------------------------------------------------------------------------------------------
# One error prefix

FAILURES = [
    ["--bogus"],                                       # the group's own options
    ["run", "--bogus", "x.yaml"],                      # a command's unknown option
    ["run"],                                           # a missing argument
    ["run", "papers/fmn/table5.yaml", "--tier", "huge"],            # a bad choice
    ["run", "papers/fmn/table5.yaml", "--smoke", "--shakedown"],    # a UsageError of ours
    ["run", "papers/fmn/table5.yaml", "--smoke", "--dry-run",       # a ReidBenchError
     "--set", "eval.distance=cosine"],
    ["run", "papers/fmn/table5.yaml", "--smoke", "--dry-run", "--set", "recipe.train"],
    ["run", "papers/fmn/table5.yaml", "--smoke", "--dry-run", "--weights", "nope=/x"],
    ["weights", "path", "nope"],
    ["weights", "path", "caffenet"],                  # a command's own error line
    ["status", "papers/fmn/table5.yaml", "--variant", "nope"],
]


@pytest.mark.parametrize("args", FAILURES, ids=[" ".join(a) for a in FAILURES])
def test_every_error_has_the_one_prefix(args, no_caches):
    res = CliRunner().invoke(main, args)
    assert res.exit_code in (1, 2), res.output
    lines = res.stderr.splitlines()
    assert sum(ln.startswith("error: ") for ln in lines) == 1, res.stderr
    assert not any(ln.lower().startswith(("error:", "reid-bench: error"))
                   and not ln.startswith("error: ") for ln in lines)
    assert "Traceback" not in res.output


@pytest.mark.parametrize("args", [[], ["data"], ["weights"]])
def test_a_group_without_a_command_shows_its_help_not_an_error(args):
    res = CliRunner().invoke(main, args)
    assert "Commands:" in res.output and "error" not in res.output.lower()


def test_only_the_error_helper_spells_a_prefix():
    """Every ``error:``/``warning:`` the CLI prints goes through cli/errors.py: no other module
    of cli/ writes the prefix itself."""
    bad = []
    for f in sorted((PKG / "cli").glob("*.py")):
        if f.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.lower().lstrip().startswith(("error:", "warning:",
                                                                "error ", "warning ")):
                bad.append(f"{f.name}:{node.lineno}: {node.value!r}")
    assert not bad, bad


# --------------------------------------------------------------------------------------------
# --version and --help import no torch

@pytest.mark.parametrize("args", [["--version"], ["--help"], ["run", "--help"],
                                  ["weights", "--help"]])
def test_version_and_help_import_no_torch(args):
    code = ("import sys\nfrom reid_bench.cli import main\n"
            f"try:\n    main({args!r}, prog_name='reid-bench')\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("NO-TORCH"), out.stdout
    if args == ["--version"]:
        import reid_bench

        assert f"reid-bench, version {reid_bench.__version__}" in out.stdout
