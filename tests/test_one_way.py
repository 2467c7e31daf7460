"""One way each: text tables only through ``core/textable.py`` (no column padded by hand) and
one "row × dataset" label (``table/plan.cell_label``). The source checks parse every module of
the package; each is shown to find the forms it forbids."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest

from reid_bench.core.textable import text_table
from reid_bench.table.plan import CellKey, cell_label

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reid_bench"
TEXTABLE = PACKAGE / "core" / "textable.py"
PLAN = PACKAGE / "table" / "plan.py"
# [[fill]align][sign][z][#][0][width]…: a width pads a column, unless it is a zero fill ("06d",
# a number in a file name) without an explicit alignment.
_SPEC = re.compile(r"^(?P<align>.?[<>=^])?[+\- ]?z?#?(?P<zero>0)?(?P<width>[1-9]\d*)")
_FORMAT_WIDTH = re.compile(r"\{[^{}]*:(?:.?[<>=^])?[+\- ]?#?[1-9]\d*[^{}]*\}|%-?[1-9]\d*s")


def _spec_text(node: ast.AST) -> str:
    return "".join(v.value for v in getattr(node, "values", []) if isinstance(v, ast.Constant))


def hand_alignment(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each column padded by hand: a width in an f-string's format spec, a
    ``str.format``/``%`` width in a string, a call of ``ljust``/``rjust``/``center``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            spec = _spec_text(node.format_spec)
            m = _SPEC.match(spec)
            computed = any(isinstance(v, ast.FormattedValue) for v in node.format_spec.values)
            if (m and m["width"] and (m["align"] or not m["zero"])) or (
                    computed and not spec.startswith(".")):  # a width computed: {s:<{w}}
                out.append((node.lineno, f"format spec {spec!r}"))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("ljust", "rjust", "center")):
            out.append((node.lineno, f".{node.func.attr}()"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out += [(node.lineno, f"format {m.group()!r}")
                    for m in _FORMAT_WIDTH.finditer(node.value)]
    return out


def hand_cell_labels(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each "<value> × <value>" built by hand: an f-string joining two values
    with " × ", a ``"{} × {}"``-style format string, or a " × " string glued between values."""
    out = []
    in_fstrings = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            for a, mid, b in zip(parts, parts[1:], parts[2:], strict=False):
                if (isinstance(a, ast.FormattedValue) and isinstance(b, ast.FormattedValue)
                        and isinstance(mid, ast.Constant) and mid.value == " × "):
                    out.append((node.lineno, "f-string value × value"))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in in_fstrings):
            if node.value == " × " or re.search(r"\} × \{", node.value):
                out.append((node.lineno, f"string {node.value!r}"))
    return out


def _findings(check, skip: set[Path]) -> list[str]:
    return [f"{f.relative_to(ROOT)}:{line} {what}"
            for f in sorted(PACKAGE.rglob("*.py")) if f not in skip
            for line, what in check(ast.parse(f.read_text(), filename=str(f)))]


def test_no_column_is_padded_by_hand():
    found = _findings(hand_alignment, {TEXTABLE})
    assert not found, ("align columns with reid_bench/core/textable.text_table (header=None "
                       "for a listing):\n" + "\n".join(found))


def test_no_row_dataset_label_is_built_by_hand():
    found = _findings(hand_cell_labels, {PLAN})
    assert not found, ("name a cell with reid_bench/table/plan.cell_label (or Cell.label / "
                       "CellKey.label):\n" + "\n".join(found))


@pytest.mark.parametrize("source", [
    'f"{name:<9} {x}"', 'f"{n:>6.2f}"', 'f"{n:8}"', 'f"{s:^{w}}"', 'f"{s:*<12}"',
    'name.ljust(9)', 'x.rjust(w)', 's.center(20)', '"{:<10} {}".format(a, b)', '"%-9s" % s',
    '"{0:>8}".format(a)',
])
def test_the_alignment_check_finds_padding(source):
    assert hand_alignment(ast.parse(source))


@pytest.mark.parametrize("source", [
    'f"{pid:04d}_c{cam}"', 'f"{x:.2f}"', 'f"{n:,}"', 'f"{d:+.2f}"', 'f"{v!r}"', '"{:.1f}".format(x)',
    '"50%"', 'f"{frame:06d}"', 'f"{x:.{p}f}"',
])
def test_the_alignment_check_leaves_numbers_and_zero_fills_alone(source):
    assert not hand_alignment(ast.parse(source))


@pytest.mark.parametrize("source", [
    'f"{row} × {ds}"', 'f"  {s.state} {s.row} × {s.dataset} (seed {s.seed})"',
    '"{} × {}".format(a, b)', 'row + " × " + ds', '"{row} × {dataset}".format(**r)',
])
def test_the_label_check_finds_hand_made_labels(source):
    assert hand_cell_labels(ast.parse(source))


@pytest.mark.parametrize("source", [
    'f"{a} of {b} planned runs (splits × seeds)"', '"row × dataset [tier variant] metric"',
    'f"{s.epochs}×{n}"',
])
def test_the_label_check_leaves_prose_alone(source):
    assert not hand_cell_labels(ast.parse(source))


@pytest.mark.parametrize("split,seed", list(itertools.product([None, 0, 7], [None, 0, 2])))
def test_cell_label(split, seed):
    label = cell_label("IDE (I)", "cuhk", split, seed)
    if seed is None:
        assert label == "IDE (I) × cuhk"
        return
    where = f"seed {seed}" if split is None else f"split {split}, seed {seed}"
    assert label == f"IDE (I) × cuhk ({where})"
    for tier, variant in itertools.product(["full", "smoke"], ["", "set:train.lr=0.1"]):
        assert CellKey("IDE (I)", "cuhk", split, seed, tier, variant).label == label


def test_text_table_listing_without_header_and_min_widths():
    rows = [["a", "x y"], ["bbb", "z"]]
    assert text_table(None, rows, indent="  ", sep=" ") == ["  a   x y", "  bbb z"]
    assert text_table(None, rows, sep=" ", min_widths=[5]) == ["a     x y", "bbb   z"]
    assert text_table(["h", "i"], rows, min_widths=[0, 4], rule=True) == [
        "h    i", "---  ----", "a    x y", "bbb  z"]
    assert text_table(None, []) == []
