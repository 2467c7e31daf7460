"""The report's view model: what every renderer (HTML, markdown, LaTeX, JSON) shows.

A ``TableView`` is one paper table: its ``RowView`` objects, each holding one ``Number`` per
(dataset column, metric) — published, ours (mean ± std over seeds and splits), verdict and
flags — plus the claims checked, the recipe with its assumptions, the fidelity ledger, the
figures, the provenance of every results row and the results of other tiers and variants
(``OtherResults``). ``report.aggregate`` builds it from a spec and its results CSV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec import Row, Spec
from ..spec.consistency import TableConsistency
from . import claims, ledger, plots, verdicts
from .flags import FLAGS
from .fmt import delta

NO_RESULT = "no result yet: run `reid-bench run` on this spec"


@dataclass
class Number:
    """One published number and what we reproduced for it."""

    published: float | None
    mean: float | None = None
    std: float | None = None
    n: int = 0
    values: list[float] = field(default_factory=list)
    status: str = "not run"  # ok | failed | diverged | not run | quoted | n/a
    reason: str = ""
    synthetic: bool = False
    verdict: verdicts.Verdict = verdicts.Verdict("not run")
    # The trust flag behind a withheld verdict: "edited" | "stale" | "data changed" | "variant"
    # | "" (never reproduced).
    flag: str = ""
    # Every flag of the number (rowstate.RowState.flags of its rows, merged): each view that
    # shows the number shows them all.
    flags: list[str] = field(default_factory=list)
    recorded: bool = False  # the CSV has a row for this number's cells (even a not-run one)
    # Runs (distinct split × seed) planned for this number and finished ok. With fewer than
    # planned, ``mean`` stays None and the partial mean goes to ``partial_mean``.
    planned: int = 1
    runs: int = 0
    partial_mean: float | None = None

    @property
    def listed(self) -> bool:
        """Whether a list of another tier's or variant's numbers shows this one: it has a
        value or an outcome worth saying (failed, diverged...), not a cell it never ran."""
        return (self.mean is not None or self.status not in ("not run", "quoted", "n/a")
                or (self.recorded and self.status == "not run"))

    @property
    def incomplete(self) -> bool:
        return 0 < self.runs < self.planned

    @property
    def delta(self) -> float | None:
        return delta(self.mean, self.published)


@dataclass
class RowView:
    row: Row
    numbers: dict[tuple[str, str], Number] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = "not run"

    name = property(lambda self: self.row.name)
    runnable = property(lambda self: self.row.runnable)
    method = property(lambda self: self.row.method)
    source = property(lambda self: self.row.source)
    note = property(lambda self: self.row.note)

    def in_column(self, ds: str) -> bool:
        return self.row.datasets is None or ds in self.row.datasets

    @property
    def precisions(self) -> list[str]:
        """Precisions of this row's cells that differ from the papers' (fp32), e.g. bf16."""
        from ..engine.accel import PAPER_PRECISION

        return sorted({str(c["precision"]) for c in self.cells
                       if isinstance(c.get("precision"), str)
                       and c["precision"] != PAPER_PRECISION})

    @property
    def reasons(self) -> list[str]:
        """Distinct not-run reasons and failure messages of this row's numbers."""
        out: list[str] = []
        for n in self.numbers.values():
            shown = n.status not in ("ok", "quoted", "n/a") or n.flag in FLAGS
            if n.reason and shown and n.reason not in out:
                out.append(n.reason)
        return out

    @property
    def shown_reasons(self) -> list[str]:
        """``reasons`` worth a line under the row (not the generic "no result yet")."""
        return [r for r in self.reasons if not r.startswith(NO_RESULT)]


@dataclass
class RecipeEntry:
    scope: str  # "table" or a row name or "smoke"
    key: str
    value: Any
    source: str | None
    assumed: str | None


@dataclass
class OtherResults:
    """Results of the table in another tier (smoke, shakedown) or variant (spec copy, --set):
    shown beside the main table, labelled, never mixed into its numbers."""

    tier: str
    variant: str
    labels: list[str]
    rows: list[RowView]
    columns: list[tuple[str, str]]

    @property
    def title(self) -> str:
        return f"{self.tier}" + (f" · {self.variant}" if self.variant else "")

    @property
    def empty(self) -> bool:
        """No number of this block has a value or an outcome to show."""
        return not any(n.listed for rv in self.rows for n in rv.numbers.values())


@dataclass
class TableView:
    spec: Spec
    rows: list[RowView]
    columns: list[tuple[str, str]]  # (dataset column, metric)
    counts: dict[str, int]
    synthetic: bool
    smoke: bool
    provenance: list[dict[str, Any]]
    recipe: list[RecipeEntry]
    claims: list[claims.ClaimResult]
    page: str
    csv: str
    plots: list[plots.Plot] = field(default_factory=list)
    wall_s: float = 0.0
    # The results shown in the main table: this tier of this variant ("" = canonical spec;
    # a spec copy's own ``spec:<hash>``). ``deviation`` describes a non-canonical variant.
    tier: str = "full"
    variant: str = ""
    deviation: list[str] = field(default_factory=list)
    # Every other (tier, variant) of the table's results, shown beside the main table.
    others: list[OtherResults] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)  # provenance of every row
    ledger: ledger.Ledger | None = None  # assumptions, stated/assumed counts, variant runs
    # The published numbers checked against each other and the spec's AP definition
    # (spec/consistency.py): a line and any errors.
    consistency: TableConsistency | None = None
    data_checked: bool = False  # rows' dataset fingerprints compared with the current data
    curves: list[Any] = field(default_factory=list)  # training curves (report.curves.Curve)

    @property
    def flagged(self) -> dict[str, int]:
        """How many results rows are flagged edited / stale."""
        out = dict.fromkeys(FLAGS, 0)
        for c in self.cells:
            if c.get("flag") in out:
                out[c["flag"]] += 1
        return out

    @property
    def flags(self) -> list[str]:
        """Deviation flags of any headline number on this page that make it not comparable
        without a trust verdict of its own ("subset", "smoke recipe"; a spec copy's "variant"
        has its own banner)."""
        return sorted({f for rv in self.rows for n in rv.numbers.values() for f in n.flags
                       if f in ("subset", "smoke recipe")})

    @property
    def number_flags(self) -> list[str]:
        """Every flag of any headline number (footnotes and legends say what each means)."""
        from ..table.rowstate import merge_flags_text

        return merge_flags_text(f for rv in self.rows for n in rv.numbers.values()
                                for f in n.flags)

    @property
    def headline_empty(self) -> bool:
        """No headline number has a result while other blocks do: the page says the table is
        not run and points at the labelled blocks."""
        return bool(self.blocks) and not any(n.mean is not None or n.incomplete
                                             for rv in self.rows for n in rv.numbers.values())

    @property
    def other_tiers(self) -> list[str]:
        """Tiers of the other blocks with something to show (index banners)."""
        return sorted({o.tier for o in self.others if not o.empty})

    @property
    def blocks(self) -> list[tuple[str, list[str]]]:
        """(title, flags) of every other block of this table with a number or an outcome to
        show (the index lists them beside the headline counts)."""
        out = []
        for o in self.others:
            listed = [n for rv in o.rows for n in rv.numbers.values() if n.listed]
            if listed:
                flags = sorted({f for n in listed for f in n.flags})
                out.append((o.title, flags))
        return out

    @property
    def assumptions(self) -> list[RecipeEntry]:
        return [e for e in self.recipe if e.assumed]

    @property
    def claims_held(self) -> int:
        return sum(1 for c in self.claims if c.status == claims.HELD and not c.synthetic)

    @property
    def mixed_provenance(self) -> list[str]:
        """Warnings when the numbers of this table do not share one provenance: more than one
        code version, uncommitted changes, more than one dataset fingerprint per column, more
        than one torch version or device. (``provenance`` holds only the shown tier and
        variant.)"""
        cells = [p for p in self.provenance if p.get("status") == "ok"]
        out = []

        def distinct(key: str, among=cells) -> list[str]:
            return sorted({str(p.get(key)) for p in among if p.get(key) not in (None, "")})

        if len(c := distinct("git_commit")) > 1:
            out.append(f"{len(c)} code versions (commits {', '.join(x[:8] for x in c)})")
        if any(str(p.get("git_dirty")).lower() == "true" for p in cells):
            out.append("some cells ran with uncommitted changes (git_dirty)")
        for ds in self.spec.datasets:
            f = distinct("dataset_fingerprint", [p for p in cells if p.get("dataset") == ds])
            if len(f) > 1:
                out.append(f"column {ds!r}: {len(f)} different dataset fingerprints "
                           f"({', '.join(f)})")
        for key, what in (("torch", "torch versions"), ("device_name", "devices")):
            if len(v := distinct(key)) > 1:
                out.append(f"{len(v)} {what} ({', '.join(v)})")
        return out

    def protocol(self, ds: str) -> str:
        from ..eval import PROTOCOLS

        p = PROTOCOLS.get(self.spec.datasets[ds].eval.protocol)
        return p.description if p else ""
