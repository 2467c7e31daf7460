"""Every value is traced, defaults included (issue 26 item 3): a recipe value a spec leaves out
is the method's Recipe default — our choice, never the paper's. The ledger lists and counts it
as ``assumed: default``; ``validate`` refuses it in a spec of the project's ``papers/`` folder,
naming the keys with the file and line."""

from __future__ import annotations

from click.testing import CliRunner
from toyspec import IDE_A, toy_spec, write_spec

from reid_bench.cli import main
from reid_bench.report.ledger import assumptions, counts
from reid_bench.spec import load_spec
from reid_bench.spec.defaults import untraced_leaves

# A new user's IDE table (docs/adding-a-paper.md): lr, epochs, batch size and the input size
# cite the paper; the optimiser, momentum, weight decay, flip and crop are left out.
NEW_USER_RECIPE = """\
recipe:
  input:
    height: {value: 256, source: "Sec. 4"}
    width: {value: 128, source: "Sec. 4"}
  backbone:
    pretrained: {value: imagenet, source: "Sec. 4"}
  train:
    lr: {value: 0.01, source: "Sec. 4"}
    epochs: {value: 60, source: "Sec. 4"}
    batch_size: {value: 32, source: "Sec. 4"}
"""


def _spec_text() -> str:
    return toy_spec("rows:\n" + IDE_A, recipe=NEW_USER_RECIPE)


def test_new_user_spec_runs_its_defaults_as_assumptions(tmp_path):
    spec = load_spec(write_spec(tmp_path, _spec_text()), check_methods=True)
    listed = {a.key: (a.value, a.reason, a.where) for a in assumptions(spec)}
    # The values the spec left out run with the Recipe's defaults, and say so.
    assert listed["recipe.train.optimizer"] == ("sgd", "default", "row IDE A")
    assert listed["recipe.train.momentum"][:2] == (0.9, "default")
    assert listed["recipe.train.weight_decay"][:2] == (0.0005, "default")
    assert listed["recipe.input.flip"][:2] == (True, "default")
    assert listed["recipe.input.random_crop"][:2] == (False, "default")
    c = counts(spec)
    left_out = {u.key for u in untraced_leaves(spec)}
    assert c["recipe_default"] == len(left_out) > 0
    assert c["recipe_assumed"] == c["recipe_default"]  # no "0 assumed, every value cites"
    assert c["recipe_stated"] == 6


def test_validate_refuses_untraced_values_under_papers(tmp_path, monkeypatch):
    path = write_spec(tmp_path, _spec_text())  # tmp_path/papers/demo/table1.yaml
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["validate", str(path)])
    assert out.exit_code == 1
    line = next(x for x in out.output.splitlines() if "neither 'source:' nor 'assumed:'" in x)
    assert line.startswith(f"{path}:1") or line.startswith(f"{path}:")
    for key in ("train.optimizer", "train.momentum", "train.weight_decay", "input.flip",
                "input.random_crop"):
        assert key in line
    # Outside the project's papers/ folder the same spec validates (its page lists them).
    monkeypatch.chdir(tmp_path / "papers")
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0


# Every project spec traces every value its methods read: test_spec.py's
# test_every_shipped_spec_validates (one load per spec, with complete=True).
