"""Spec schema: errors name the file, the line, the key path and what is allowed."""

import textwrap
from pathlib import Path

import pytest
from project_specs import SPEC_FILES

from reid_bench.core.errors import SpecError
from reid_bench.report.ledger import counts
from reid_bench.spec import load_spec, resolved_recipe
from reid_bench.spec.defaults import untraced_leaves

GOOD = """\
paper:
  id: demo
  title: Demo
  authors: [A. Author]
  venue: Nowhere
  year: 2020
table:
  id: table1
  caption: demo table
metrics: [rank1, mAP]
datasets:
  market:
    name: market1501
    eval: {protocol: market}
recipe:
  train:
    lr: {value: 0.1, source: "Sec. 4"}
    epochs: {value: 3, assumed: "short"}
rows:
  - name: ours
    method: ide
    params: {backbone: resnet50}
    published: {market: {rank1: 80.0, mAP: null}}
  - name: theirs
    runnable: false
    source: "[12]"
    published: {market: {rank1: 70.0, mAP: 50.0}}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "demo" / "table1.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def test_good_spec_loads(tmp_path):
    spec = load_spec(write(tmp_path, GOOD), check_methods=True)
    assert [r.name for r in spec.rows] == ["ours", "theirs"]
    assert spec.rows[0].published["market"]["mAP"] is None
    values, prov = resolved_recipe(spec, spec.rows[0], smoke=False)
    assert values["train"] == {"lr": 0.1, "epochs": 3}
    assert prov["train.epochs"] == {"assumed": "short"}
    assert len(spec.spec_hash) == 16


def test_unknown_key_names_file_line_key_and_nearest(tmp_path):
    p = write(tmp_path, GOOD.replace("    method: ide\n", "    metod: ide\n    method: ide\n"))
    with pytest.raises(SpecError) as e:
        load_spec(p)
    msg = str(e.value)
    assert f"{p}:21:" in msg
    assert "rows.0.metod" in msg
    assert "Did you mean 'method'?" in msg


def test_wrong_type_names_key(tmp_path):
    p = write(tmp_path, GOOD.replace("year: 2020", "year: twenty"))
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert f"{p}:6: paper.year:" in str(e.value)


def test_missing_published_number(tmp_path):
    p = write(tmp_path, GOOD.replace("{market: {rank1: 80.0, mAP: null}}", "{market: {rank1: 80.0}}"))
    with pytest.raises(SpecError) as e:
        load_spec(p)
    msg = str(e.value)
    assert "rows.0.published.market" in msg and "'mAP'" in msg and f"{p}:23" in msg


def test_untraced_recipe_value(tmp_path):
    p = write(tmp_path, GOOD.replace('lr: {value: 0.1, source: "Sec. 4"}', "lr: 0.1"))
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert "recipe.train.lr" in str(e.value) and "traced" in str(e.value)


def test_unknown_method_strict_only(tmp_path):
    p = write(tmp_path, GOOD.replace("method: ide", "method: nosuch"))
    load_spec(p)  # the runner records such rows as not-run cells
    with pytest.raises(SpecError) as e:
        load_spec(p, check_methods=True)
    assert "unknown method 'nosuch'" in str(e.value) and "ide" in str(e.value)


def test_bad_method_param_and_recipe_key(tmp_path):
    p = write(tmp_path, GOOD.replace("backbone: resnet50", "backbone: alexnet")
              .replace("    epochs:", "    epochz:"))
    with pytest.raises(SpecError) as e:
        load_spec(p, check_methods=True)
    msg = str(e.value)
    assert "rows.0.params.backbone" in msg and "resnet50" in msg
    assert "epochz" in msg and "epochs" in msg


def test_malformed_yaml_line(tmp_path):
    p = write(tmp_path, GOOD.replace("  caption: demo table", "  caption: [demo table"))
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert "malformed YAML" in str(e.value) and str(p) in str(e.value)


def test_quoted_row_needs_source(tmp_path):
    p = write(tmp_path, GOOD.replace('    source: "[12]"\n', ""))
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert "needs 'source'" in str(e.value)


def test_unknown_protocol_lists_allowed(tmp_path):
    p = write(tmp_path, GOOD.replace("protocol: market}", "protocol: markett}"))
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert "unknown protocol 'markett'" in str(e.value) and "market_mq" in str(e.value)


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_spec_validates(path):
    """Every project spec loads as ``validate`` loads it (methods registered, every value its
    methods read traced: ``complete``), leaves no value to a Recipe default, and a spec with
    runnable rows has recipe values in its ledger. (One load per spec for the three checks
    that test_recipe_defaults and test_ledger each repeated over every spec.)"""
    spec = load_spec(path, check_methods=True, complete=True)
    assert spec.rows
    assert untraced_leaves(spec) == []
    if any(r.runnable for r in spec.rows):
        c = counts(spec)
        assert c["recipe_stated"] + c["recipe_assumed"] > 0, path
