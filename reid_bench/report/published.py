"""``reid-bench published --format markdown``: the specs' published numbers as markdown."""

from __future__ import annotations

import pandas as pd

from ..core.textable import markdown_table


def published_markdown(df: pd.DataFrame, captions: dict[tuple[str, str], tuple]) -> str:
    """``reid-bench published --format markdown``: per table, a heading citing the paper, the
    table's caption quoted, then its published numbers (long format; quoted rows included)."""
    out = []
    cols = [c for c in df.columns if c not in ("paper", "table")]
    for (paper, table), sub in df.groupby(["paper", "table"], sort=False):
        info, caption = captions[(paper, table)]
        out.append(f"### {info.title} ({', '.join(info.authors[:1])}"
                   f"{' et al.' if len(info.authors) > 1 else ''}, {info.venue}, {info.year})"
                   f" — {table.replace('table', 'Table ')}\n\n> {caption}\n\n")
        out.append(markdown_table(cols, list(sub[cols].itertuples(index=False))) + "\n")
    return "".join(out)
