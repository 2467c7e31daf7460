"""Spec loading is bounded and strict: alias expansion bounded, merge keys, duplicate keys,
non-UTF-8, non-finite and absurd numbers refused with file:line; the report names a bad spec
and goes on with the others."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner
from toyspec import IDE_A, toy_spec, write_spec

from reid_bench.cli import main
from reid_bench.core import yamlio
from reid_bench.core.errors import SpecError
from reid_bench.report.build import build_report
from reid_bench.spec import load_spec
from reid_bench.table.overrides import parse_sets, validate_overrides

SMOKE = "smoke:\n  recipe:\n    train: {epochs: 1, lr: 0.05}\n"
GOOD = toy_spec("rows:\n" + IDE_A, smoke=SMOKE)


def _line(text: str, needle: str, nth: int = 1) -> int:
    hits = [i for i, t in enumerate(text.splitlines(), 1) if needle in t]
    return hits[nth - 1]


def bomb(fanout: int, levels: int) -> str:
    """A "billion laughs" block: level i lists level i-1 ``fanout`` times (fanout**levels)."""
    out = [f"l0: &l0 [{', '.join(['lol'] * fanout)}]"]
    out += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fanout)}]" for i in range(1, levels)]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ aliases


@pytest.mark.parametrize(("fanout", "levels"), [(9, 9), (30, 30), (2, 60), (10, 6), (400, 3)])
@pytest.mark.parametrize("where", ["alone", "in_spec"])
def test_an_alias_bomb_is_refused_fast_and_small(fanout, levels, where, tmp_path):
    text = bomb(fanout, levels)
    if where == "in_spec":  # under a key the schema does not know, after a valid spec
        text = GOOD + "notes:\n" + "".join(f"  - {ln}\n" for ln in text.splitlines())
    path = write_spec(tmp_path, text)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert f"{path}:" in str(exc.value) and "\n" not in str(exc.value).strip()
    assert seconds < 5 and peak < 200 * 2**20, (seconds, peak)


def test_aliases_that_share_a_block_still_load(tmp_path):
    shared = GOOD.replace("recipe:\n  input:\n", "recipe:\n  input: &inp\n")
    shared += "  - name: IDE B\n    method: ide\n    params: {backbone: resnet50}\n" \
              "    recipe: {input: *inp}\n    published: {market: {rank1: 1.0, mAP: 1.0}}\n"
    spec = load_spec(write_spec(tmp_path, shared))
    assert spec.rows[1].recipe["input"] == spec.recipe["input"]


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n"])
def test_a_recursive_alias_is_refused(text, tmp_path):
    with pytest.raises(SpecError, match="nested more than"):
        load_spec(write_spec(tmp_path, text))


def test_a_merge_key_is_refused_with_its_line(tmp_path):
    text = GOOD.replace("  train:\n", "  train:\n    <<: {momentum: 0.9}\n")
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError, match=rf"{path}:{_line(text, '<<')}: YAML merge key"):
        load_spec(path)


# ------------------------------------------------------------------ duplicate keys

DUPLICATES = {  # where → (the key given twice, the text with it twice)
    "top_level": ("metrics", GOOD + "metrics: [rank1]\n"),
    "nested": ("lr", GOOD.replace("  train:\n", "  train:\n    lr: {value: 0.5, source: x}\n")),
    "in_a_list_item": ("method", GOOD.replace("    method: ide\n",
                                              "    method: ide\n    method: ide\n")),
    "flow_mapping": ("rank1", GOOD.replace("{rank1: 70.0,", "{rank1: 70.0, rank1: 1.0,")),
    "equal_after_parsing": ("1", GOOD + "tolerances: {1: 1.0, 0x1: 2.0}\n"),
}


@pytest.mark.parametrize("where", sorted(DUPLICATES))
def test_a_duplicate_key_is_an_error_naming_both_lines(where, tmp_path):
    key, text = DUPLICATES[where]
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    msg = str(exc.value)
    assert "given twice" in msg and f"{path}:" in msg
    lines = [int(x) for x in msg.split("(lines ")[1].split(")")[0].split(" and ")]
    assert f"{path}:{lines[1]}:" in msg and lines[0] <= lines[1]
    src = text.splitlines()
    if where != "equal_after_parsing":
        assert all(key in src[n - 1] for n in lines)


# ------------------------------------------------------------------ encodings, size, depth

ENCODINGS = {
    "latin1": lambda t: t.replace("toy table", "café table").encode("latin-1"),
    "cp1252_quote": lambda t: t.replace("toy table", "\u2018toy\u2019").encode("cp1252"),
    "utf16": lambda t: t.encode("utf-16"),
    "truncated_utf8": lambda t: t.encode() + "é".encode()[:1],
    "binary": lambda t: bytes(range(256)) * 4,
}


@pytest.mark.parametrize("enc", sorted(ENCODINGS))
def test_non_utf8_is_a_one_line_error_naming_the_file(enc, tmp_path):
    path = tmp_path / "papers" / "demo" / "table1.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(ENCODINGS[enc](GOOD))
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}:") and "not UTF-8" in msg and "\n" not in msg


def test_size_and_depth_are_bounded(tmp_path):
    path = write_spec(tmp_path, GOOD + "notes:\n" + "  - x\n" * (yamlio.MAX_BYTES // 6 + 1))
    with pytest.raises(SpecError, match="bytes; a spec is at most"):
        load_spec(path)
    deep = "a: " + "[" * (yamlio.MAX_DEPTH + 5) + "]" * (yamlio.MAX_DEPTH + 5) + "\n"
    with pytest.raises(SpecError, match="nested more than"):
        load_spec(write_spec(tmp_path, deep))
    deep = "a: " + "[" * 5000 + "]" * 5000 + "\n"  # beyond Python's recursion limit
    with pytest.raises(SpecError):
        load_spec(write_spec(tmp_path, deep))


# ------------------------------------------------------------------ numbers

NON_FINITE = [".inf", "-.inf", "+.inf", ".nan", ".NaN", ".Inf", "1.0e400"]
PLACES = {  # where a number goes → (text with X in its place, the line's needle)
    "recipe_lr": (GOOD.replace("lr: {value: 0.01,", "lr: {value: X,"), "lr: {value:"),
    "smoke_lr": (GOOD.replace("lr: 0.05}", "lr: X}"), "lr: X}"),
    "published": (GOOD.replace("rank1: 70.0", "rank1: X"), "rank1: X"),
    "tolerance": (GOOD + "tolerances: {mAP: X}\n", "tolerances"),
    "params": (GOOD.replace("{backbone: resnet50}", "{backbone: resnet50, dropout: X}"),
               "dropout"),
    "unknown_key": (GOOD + "whatever: X\n", "whatever"),
}


# "1.0e400" is text to YAML 1.1 (a float needs a signed exponent), so under a key no model
# types it stays text; everywhere a model takes a number it reads as inf and is refused.
CASES = [(p, lit) for p in sorted(PLACES) for lit in NON_FINITE
         if not (p == "unknown_key" and lit == "1.0e400")]


@pytest.mark.parametrize(("place", "literal"), CASES)
def test_a_non_finite_number_is_refused_with_its_line(literal, place, tmp_path):
    template, needle = PLACES[place]
    line = _line(template, needle)
    text = template.replace("X", literal)
    path = write_spec(tmp_path, text)
    # YAML floats (".inf") are refused by the reader; text that reads as inf ("1.0e400":
    # YAML 1.1 needs a signed exponent for a float) by the models (Strict: allow_inf_nan)
    with pytest.raises(SpecError, match=rf"{path}:{line}: .*finite"):
        load_spec(path)


ABSURD = ["1e308", "'1e308'", "1.0e+308", "'inf'", "'nan'", "'-Infinity'", "1.0e+20", "11.0"]


@pytest.mark.parametrize("value", ABSURD)
@pytest.mark.parametrize("place", ["recipe_lr", "smoke_lr"])
def test_an_absurd_or_non_finite_learning_rate_is_refused_with_its_line(value, place,
                                                                       tmp_path):
    template, needle = PLACES[place]
    line = _line(template, needle)
    path = write_spec(tmp_path, template.replace("X", value))
    with pytest.raises(SpecError) as exc:
        load_spec(path, check_methods=True)
    assert f"{path}:{line}: " in str(exc.value) and "lr" in str(exc.value)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e308", "inf", "nan", "1.0e400"])
def test_a_non_finite_or_absurd_set_override_is_refused(value, tmp_path):
    spec = load_spec(write_spec(tmp_path, GOOD))
    from reid_bench.table.overrides import OverrideError

    with pytest.raises((OverrideError, SpecError)):
        validate_overrides(spec, spec.rows, parse_sets([f"train.lr={value}"]))


# ------------------------------------------------------------------ the report goes on

BAD_SPECS = {
    "bomb": lambda: bomb(30, 30).encode(),
    "duplicate": lambda: (GOOD + "metrics: [rank1]\n").encode(),
    "latin1": lambda: GOOD.replace("toy table", "café").encode("latin-1"),
    "inf": lambda: GOOD.replace("rank1: 70.0", "rank1: .inf").encode(),
    "malformed": lambda: b"paper: [unclosed\n",
}


@pytest.mark.parametrize("bad", sorted(BAD_SPECS))
@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_the_report_names_a_bad_spec_and_goes_on(bad, fmt, tmp_path):
    good = write_spec(tmp_path, GOOD)
    broken = tmp_path / "papers" / "demo" / "table2.yaml"
    broken.write_bytes(BAD_SPECS[bad]())
    out = build_report(tmp_path / "results", tmp_path / "site",
                       [str(tmp_path / "papers")], fmt=fmt)
    text = out.read_text()
    if fmt == "json":
        data = json.loads(text)
        assert [e["file"] for e in data["errors"]] == [str(broken)]
        assert len(data["tables"]) == 1
    else:
        assert str(broken) in text and "toy table" in text
    res = CliRunner().invoke(main, ["report", "--results-dir", str(tmp_path / "results"),
                                    "--out", str(tmp_path / "site2"), "--specs",
                                    str(tmp_path / "papers"), "--format", fmt])
    assert res.exit_code == 0, res.output
    assert Path(good).is_file()
