"""Check that a spec's quotes can be found in the paper's text.

Convention: a traced value's ``source: "Sec. 3.2: <words>"`` quotes the paper after the first
``": "`` (a bare locator such as ``"Sec. 4"`` or ``"Table 5 (...)"`` quotes nothing), and an
assumption's ``replaces: "<words>"`` is the paper text it stands in for. Both must appear in the
paper's plain text (``<dir>/<paper id>.txt``) up to whitespace, case, line-break hyphenation and
LaTeX math markup (``$``, ``\\times``), so a reader can search the PDF for them.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..table.traced_values import traced_values
from . import Spec


def normalise(text: str) -> str:
    """Lower case, single spaces, no line-break hyphens, no ``$``/``*`` markup, ``\\times`` → ×."""
    text = re.sub(r"-\n\s*", "", text)
    text = text.replace("$", "").replace("*", "").replace("\\times", "×")
    return re.sub(r"\s+", " ", text).strip().lower()


def quoted(source: str) -> str | None:
    """The quoted words of a ``source:`` ("Sec. 4: the words" → "the words"), else None."""
    head, sep, words = source.partition(": ")
    return words if sep and words.strip() else None


def check_quotes(spec: Spec, paper_text: str) -> list[tuple[str, str, str]]:
    """``(key, field, quote)`` for every ``source`` quote and ``replaces`` text of ``spec`` not
    found in ``paper_text``."""
    text = normalise(paper_text)
    bad = []
    for t in traced_values(spec, defaults=False):
        for fld, q in (("source", quoted(t.source) if t.source else None),
                       ("replaces", t.replaces)):
            if q and normalise(q) not in text:
                bad.append((f"{t.key}" + (f" ({t.owner})" if t.owner else ""), fld, q))
    return bad


def paper_text(folder: Path, spec: Spec) -> str | None:
    """``<folder>/<paper id>.txt`` or None when there is none."""
    p = Path(folder) / f"{spec.paper.id}.txt"
    return p.read_text(encoding="utf-8") if p.is_file() else None
