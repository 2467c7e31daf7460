"""``report --format latex``: one booktabs table per paper table, published vs reproduced.

``report.tex`` is a complete document (article class; booktabs, amssymb, graphicx — all in
TeX Live's latex-base/recommended sets) that compiles with ``pdflatex``; each table can also be
copied into a paper. Cells show the published number, ours (mean ± std over seeds and splits)
and Δ with a verdict mark. Everything from the spec or the results is escaped for LaTeX.
Synthetic, subset and smoke-recipe numbers carry a mark and a note under their table, like in
the HTML report.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2

from ..table.rowstate import flag_text
from . import verdicts

TEMPLATES = Path(__file__).parent / "templates"

# Verdict marks in text-mode-safe LaTeX (the HTML's symbols are not in pdflatex's fonts).
# One per verdict (verdicts.LABELS): a verdict without a mark would stop the whole report.
MARKS = {
    "reproduced": r"$\checkmark$", "better": r"$\blacktriangle$", "worse": r"$\blacktriangledown$",
    "not run": r"$\circ$", "failed": r"$\times$", "quoted": "--", "n/a": r"$\cdot$",
    "synthetic": r"$\dagger$", "not comparable": r"$\ddagger$", "edited": r"$\ast$",
    "stale": r"$\circlearrowright$", "data changed": r"$\leftrightarrows$", "variant": r"$\neq$", "incomplete": r"$\ominus$",
}

_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
            "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
            "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
_SPECIAL_RE = re.compile("|".join(re.escape(k) for k in _SPECIAL))
# Characters outside pdflatex's default input encoding that appear in specs and results.
_UNICODE = {"−": "-", "–": "--", "—": "---", "±": r"$\pm$", "×": r"$\times$", "’": "'",
            "‘": "`", "“": "``", "”": "''", "≈": r"$\approx$", "…": r"\ldots{}", "→": r"$\to$",
            "Δ": r"$\Delta$", "λ": r"$\lambda$", "µ": r"$\mu$", "é": r"\'e", "ü": r'\"u'}


def tex(value: object) -> str:
    """``value`` as LaTeX text: special characters escaped, ``--`` kept as two hyphens, common
    Unicode mapped, anything else outside ASCII replaced by '?' (pdflatex would stop on it)."""
    s = "" if value is None else str(value)
    s = _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group()], s)
    s = s.replace("--", "-{}-")  # an option name, not an en dash
    return "".join(_UNICODE.get(c, c if ord(c) < 128 else "?") for c in s)


# The superscript each flag (rowstate.FLAGS; a precision flag: its precision) puts on a number.
FLAG_MARKS = {"synthetic": "syn", "shakedown": "sd", "smoke recipe": "sr", "subset": "sub",
              "variant": "var", "edited": "ed", "stale": "st", "data changed": "dc"}


def flag_mark(flag: str) -> str:
    """The LaTeX superscript text of ``flag``."""
    if flag.startswith("precision "):
        return tex(flag[10:])
    return FLAG_MARKS.get(flag, tex(flag))


def _num(x: float | None) -> str:
    return "--" if x is None else f"{x:.2f}"


def _ours(n) -> str:
    if n.mean is None:
        return "--"
    out = f"{n.mean:.2f}" + (rf"$\pm${n.std:.2f}" if n.n > 1 and n.std is not None else "")
    return out


def _delta(n) -> str:
    d = n.delta
    return "" if d is None else (f"{d:+.2f}".replace("-", "$-$").replace("+", "$+$"))


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        block_start_string="((*", block_end_string="*))",
        variable_start_string="(((", variable_end_string=")))",
        comment_start_string="((=", comment_end_string="=))")
    env.filters.update(tex=tex, num=_num, ours=_ours, delta=_delta, flagmark=flag_mark)
    env.globals.update(flag_text=flag_text, MARKS=MARKS, LABELS=verdicts.LABELS,
                       SEVERITY=verdicts.SEVERITY)
    return env


def render_latex(views: list, broken: list[tuple[str, str]], stamp: str) -> str:
    """The whole ``report.tex`` for ``views`` (``report.view.TableView``)."""
    return _env().get_template("report.tex.j2").render(views=views, broken=broken,
                                                       generated=stamp)
