"""Plain-text and markdown tables: the one table writer of the CLI, the checks and the report.

``text_table`` aligns columns for a terminal (header, a rule of dashes, the rows; trailing
spaces stripped); ``markdown_table`` writes a GitHub-flavoured pipe table, with ``|`` inside a
cell written as ``/`` so it cannot split the cell.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def text_table(header: Sequence[object], rows: Sequence[Sequence[object]], *,
               right: Collection[int] = (), indent: str = "", sep: str = "  ",
               rule: bool = True) -> list[str]:
    """The lines of an aligned text table. ``right``: indices of right-aligned columns
    (numbers); ``indent`` prefixes every line; ``rule`` puts a line of dashes under the
    header."""
    cells = [[str(x) for x in line] for line in [header, *rows]]
    widths = [max(len(x) for x in col) for col in zip(*cells, strict=True)]
    if rule:
        cells.insert(1, ["-" * w for w in widths])
    return [(indent + sep.join(x.rjust(w) if i in right else x.ljust(w)
                               for i, (x, w) in enumerate(zip(line, widths, strict=True))))
            .rstrip() for line in cells]


def md_cell(x: object) -> str:
    """``x`` as one markdown table cell ("" for None or NaN)."""
    if x is None or x != x:  # noqa: PLR0124 — NaN
        return ""
    return str(x).replace("|", "/")


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """A markdown pipe table (every line ends with a newline)."""
    lines = ["| " + " | ".join(md_cell(x) for x in header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
