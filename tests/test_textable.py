"""reid_bench.core.textable: the one plain-text / markdown table writer (checks, compare, report)."""

from __future__ import annotations

from reid_bench.core.textable import markdown_table, text_table


def test_text_table_pads_to_the_widest_cell_right_aligns_numbers_and_strips():
    lines = text_table(["name", "n", "note"], [["a", 5, ""], ["longer", 123, "x"]], right={1},
                       indent="  ")
    assert lines == ["  name      n  note",
                     "  ------  ---  ----",
                     "  a         5",
                     "  longer  123  x"]


def test_text_table_without_rule():
    assert text_table(["a", "bb"], [["ccc", "d"]], rule=False) == ["a    bb", "ccc  d"]


def test_markdown_table_escapes_pipes_and_blanks_missing_values():
    got = markdown_table(["row", "value"], [["A|B", 1.5], ["C", None], ["D", float("nan")]])
    assert got == ("| row | value |\n|---|---|\n| A/B | 1.5 |\n| C |  |\n| D |  |\n")
