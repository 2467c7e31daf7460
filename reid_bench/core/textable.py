"""Plain-text and markdown tables: the one table writer of the CLI, the checks and the report.

``text_table`` aligns columns for a terminal (header, a rule of dashes, the rows; trailing
spaces stripped); ``markdown_table`` writes a GitHub-flavoured pipe table, with ``|`` inside a
cell written as ``/`` so it cannot split the cell.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def text_table(header: Sequence[object] | None, rows: Sequence[Sequence[object]], *,
               right: Collection[int] = (), indent: str = "", sep: str = "  ",
               rule: bool = True, min_widths: Sequence[int] = ()) -> list[str]:
    """The lines of an aligned text table. ``header`` None: no header (and no rule), only the
    rows, aligned (a listing). ``right``: indices of right-aligned columns (numbers);
    ``indent`` prefixes every line; ``rule`` puts a line of dashes under the header;
    ``min_widths[i]``: column i is at least that wide (a column that lines up with the same
    column of other listings, e.g. every possible state name)."""
    lines = rows if header is None else [header, *rows]
    cells = [[str(x) for x in line] for line in lines]
    if not cells:
        return []
    widths = [max([len(x) for x in col] + list(min_widths[i:i + 1]))
              for i, col in enumerate(zip(*cells, strict=True))]
    if rule and header is not None:
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
