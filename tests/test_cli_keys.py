"""One ``KEY=VALUE`` parser (``core/keyvalue.py``) for ``--set``, ``--variant`` and
``--weights``; one key spelling (the value's path in the spec, ``recipe.train.lr``) whose old
``--set`` spelling (``train.lr``) stores byte-identical variants and config hashes; and every
progress bar through ``core.console.progress``, hidden by ``--quiet``."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from click.testing import CliRunner

from reid_bench.cli import main
from reid_bench.core.errors import ReidBenchError
from reid_bench.spec import load_spec
from reid_bench.table.overrides import compose_variant, parse_sets, set_parts
from reid_bench.table.plan import PlanOptions, config_hash, plan
from reid_bench.table.variants import apply_variant, available

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "reid_bench"


def _parse(option: str, item: str):
    if option == "--set":
        return parse_sets([item])
    if option == "--variant":
        return apply_variant(load_spec(ROOT / "papers/fmn/table1.yaml"), item)
    from reid_bench.weights import parse_overrides

    return parse_overrides([item])


MALFORMED = ["novalue", "=1", " =1", "a..b=1", "key="]


@pytest.mark.parametrize("option,item", list(itertools.product(
    ["--set", "--variant", "--weights"], MALFORMED)))
def test_a_malformed_item_names_the_option_and_the_fix(option, item):
    if option == "--set" and item == "key=":
        assert parse_sets(["recipe.x="]) == {"x": ""}  # --set may set an empty text
        return
    if option != "--set" and item == "a..b=1":
        item = "a..b"  # only --set keys are dotted paths checked part by part
    with pytest.raises(ReidBenchError) as err:
        _parse(option, item)
    msg = str(err.value)
    assert msg.startswith(f"{option} ") and "KEY=VALUE" in msg and "e.g." in msg, msg


@pytest.mark.parametrize("option", ["--set", "--weights"])
def test_a_key_given_twice_is_refused(option, tmp_path):
    f = tmp_path / "w.pth"
    f.write_bytes(b"x")
    items = ([f"resnet50={f}", f"resnet50={f}"] if option == "--weights"
             else ["recipe.train.lr=1", "train.lr=2"])
    with pytest.raises(ReidBenchError, match=f"{option} .*given twice"):
        parse_sets(items) if option == "--set" else _parse_weights(items)


def _parse_weights(items):
    from reid_bench.weights import parse_overrides

    return parse_overrides(items)


def test_errors_name_the_allowed_keys():
    with pytest.raises(ReidBenchError, match=r"--weights nope=/x: unknown key 'nope' "
                                             r"\(allowed keys: .*resnet50"):
        _parse_weights(["nope=/x"])
    with pytest.raises(ReidBenchError, match=r"--set params\.x: .*recipe\.<path>.*--variant"):
        parse_sets(["params.x=1"])
    with pytest.raises(ReidBenchError, match=r"--variant recipe\.nope=1: .*Allowed: .*recipe\."):
        _parse("--variant", "recipe.nope=1")


# --------------------------------------------------------------------------------------------
# One key spelling; the old one stores exactly the same

SETS = ["train.lr=0.02", "train.epochs=3", "input.flip=false", "train.lr_steps=[7, 9]"]
STORED = {"train.lr=0.02": "set:train.lr=0.02", "train.epochs=3": "set:train.epochs=3",
          "input.flip=false": "set:input.flip=false",
          "train.lr_steps=[7, 9]": "set:train.lr_steps=[7,9]"}


@pytest.mark.parametrize("item,tier", list(itertools.product(SETS, ["smoke", "full"])))
def test_set_in_either_spelling_stores_the_same_variant_and_hash(item, tier, repo_root):
    spec = load_spec(repo_root / "papers/fmn/table5.yaml")
    old, new = parse_sets([item]), parse_sets([f"recipe.{item}"])
    assert old == new
    variant = compose_variant(set_parts(new))
    assert variant == STORED[item]  # the stored form of before the new spelling, byte for byte
    cell = plan(spec, tier=tier, variant=variant)[0]
    hashes = {config_hash(spec, cell, PlanOptions(smoke=tier == "smoke", overrides=o))
              for o in (old, new)}
    assert len(hashes) == 1


RECIPE_CHOICES = [(str(p), c) for p in sorted((ROOT / "papers").glob("*/table*.yaml"))
                  for c in available(load_spec(p)) if c.startswith("recipe.")]


@pytest.mark.parametrize("path,choice", RECIPE_CHOICES,
                         ids=[f"{Path(p).parent.name}/{Path(p).stem}:{c}"
                              for p, c in RECIPE_CHOICES])
def test_variant_in_either_spelling_is_the_same_variant(path, choice):
    spec = load_spec(path)
    new_spec, part, affected = apply_variant(spec, choice)
    old_spec, old_part, old_affected = apply_variant(spec, choice[len("recipe."):])
    assert part == old_part == f"variant:{choice}" and affected == old_affected
    assert new_spec == old_spec


def test_the_cli_warns_for_the_old_key_spelling_and_plans_the_same(repo_root):
    spec = str(repo_root / "papers/fmn/table5.yaml")
    base = ["run", spec, "--smoke", "--dry-run", "--rows", "Res4"]
    old = CliRunner().invoke(main, base + ["--set", "stage1.epochs=2"])
    new = CliRunner().invoke(main, base + ["--set", "recipe.stage1.epochs=2"])
    assert old.exit_code == new.exit_code == 0, old.output
    assert ("warning: `--set stage1.epochs=…` is deprecated; use "
            "`--set recipe.stage1.epochs=…`") in old.stderr
    assert "deprecated" not in new.stderr and old.stdout == new.stdout
    assert "variant 'set:stage1.epochs=2'" in new.stdout


# --------------------------------------------------------------------------------------------
# One progress helper, honouring --quiet

def test_only_the_console_draws_progress_bars():
    """Every bar goes through core.console.progress (which honours --quiet): no other module
    imports tqdm."""
    users = []
    for f in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "tqdm" for n in names):
                users.append(str(f.relative_to(PKG)))
    assert sorted(set(users)) == ["core/console.py"]


@pytest.mark.parametrize("quiet", [False, True])
def test_data_check_bar_is_hidden_by_quiet(quiet, tmp_path, own_cache, monkeypatch):
    import tqdm as tqdm_module

    from reid_bench.core import console
    from reid_bench.data import check

    real = tqdm_module.tqdm
    drawn = []

    class Bar:
        external_write_mode = staticmethod(real.external_write_mode)

        def __init__(self, iterable=None, **kw):
            if not kw.get("disable"):
                drawn.append(kw.get("desc"))
            self.iterable = iterable

        def __iter__(self):
            return iter(self.iterable)

    monkeypatch.setattr(tqdm_module, "tqdm", Bar)
    monkeypatch.setattr(console, "_terminal", lambda: True, raising=False)  # a terminal
    small = dict(num_train_ids=2, num_test_ids=2, num_cams=2, images_per_cam=1,
                 queries_per_id=1, mq_per_query=1, num_distractors=1, num_junk=1)
    monkeypatch.setattr(check, "check_variants", lambda name: [small])
    res = CliRunner().invoke(main, ["data", "check", "synthetic", "--deep",
                                    "--data-root", str(tmp_path)] + (["--quiet"] if quiet else []))
    assert res.exit_code == 0, res.output
    assert drawn == ([] if quiet else [drawn[0]]) and (quiet or "decoding" in drawn[0])
    assert not console._state["quiet"]  # restored when the command ends
