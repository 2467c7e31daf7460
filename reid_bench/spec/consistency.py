"""Published numbers checked against each other and against the metric the spec names them by
(``validate``, ``validate --consistency``, the report's per-table line).

Per row and column: every CMC value is a percentage and the CMC does not decrease with the
rank; where the protocol bounds a query's true matches on the column's dataset (CUHK03 classic
single-shot: exactly one in a gallery of 100 identities), the printed mAP must lie in the
interval its printed CMC allows (``eval/ap_bounds.py``) under the AP definition the spec
evaluates with. A runnable row whose definition cannot give its mAP while another can is an
error naming the row, the interval and the definition that fits. Across specs, rows printing
identical numbers must be linked by ``same_as`` (``spec/same_as.py``).

Rounding: a printed number stands for every value that rounds to it, ± half a unit of its last
printed digit (35.8 → [35.75, 35.85]; 77.96 → [77.955, 77.965]); a number stored as a whole
(48.0) may have been printed "48", so it gets ± 0.5. Intervals are closed (the half-open end is
not attained but the difference is below any printed digit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ..core.metrics import METRICS
from ..eval.ap_bounds import map_interval
from ..eval.ranking import AP_DEFINITIONS
from .same_as import column_eval, declared_refs, row_columns, row_ref, shared_numbers
from .schema import Spec

#: How the report and validate name each AP definition (every AP_DEFINITIONS entry has one).
AP_LABELS = {"standard": "standard AP (mean precision at each match)",
             "market_matlab": "trapezoid AP (Market-1501 compute_AP.m)"}


def printed_interval(x: float) -> tuple[float, float]:
    """Every value (percent) that prints as ``x``: ± half a unit of its last digit."""
    d = Decimal(repr(float(x))).normalize()
    exp = d.as_tuple().exponent
    half = 0.5 * 10.0 ** min(0, exp if isinstance(exp, int) else 0)
    return x - half, x + half


@dataclass
class MapCheck:
    """One published (row, column) with a printed mAP and CMC: the mAP interval (percent)
    under each AP definition (None: no ranking has this CMC), or ``reason`` it is not
    decidable; ``ap`` is the definition the spec evaluates it with."""

    spec: Spec
    row: str
    column: str
    runnable: bool
    ap: str
    mAP: float
    intervals: dict[str, tuple[float, float] | None] | None = None
    reason: str = ""

    @property
    def decidable(self) -> bool:
        return self.intervals is not None

    @property
    def feasible(self) -> list[str]:
        lo, hi = printed_interval(self.mAP)
        return [a for a, iv in (self.intervals or {}).items()
                if iv is not None and iv[0] <= hi and lo <= iv[1]]

    def describe(self) -> str:
        if not self.decidable:
            return f"not decidable: {self.reason}"
        parts = [f"{a} " + ("no ranking has this CMC" if iv is None else
                            f"[{iv[0]:.2f}, {iv[1]:.2f}]") for a, iv in self.intervals.items()]
        return f"mAP {self.mAP} vs " + "; ".join(parts) + \
            f" → feasible: {', '.join(self.feasible) or 'none'}"


@dataclass
class Consistency:
    """The consistency of a set of specs: ``errors`` per spec path (``(key path, message)``),
    the mAP checks, and how many (row, column) CMCs were checked."""

    errors: dict[str, list[tuple]] = field(default_factory=dict)
    maps: list[MapCheck] = field(default_factory=list)
    cmc_checked: int = 0

    def add(self, spec: Spec, kp: tuple, msg: str) -> None:
        self.errors.setdefault(spec.path, []).append((kp, msg))


def _cmc(pub: dict[str, float | None]) -> dict[int, float]:
    return {METRICS[m].cmc_rank: v for m, v in pub.items()
            if v is not None and m in METRICS and METRICS[m].cmc_rank}


def _bounds(spec: Spec, col: str, protocol: str):
    """The protocol's match bounds on this column's dataset, or a reason they are unknown."""
    from ..core.registry import DATASETS, PROTOCOLS  # lazy: registries import their packages

    ds = spec.datasets[col]
    if protocol not in PROTOCOLS or ds.name not in DATASETS:
        return None, f"unknown protocol {protocol!r} or dataset {ds.name!r}"
    stats_of = DATASETS.info(ds.name).get("gallery_stats")
    stats = stats_of(dict(ds.options)) if stats_of else None
    bounds = PROTOCOLS.get(protocol)().match_bounds(stats)
    if bounds is None:
        why = ("states no bound on a query's true matches" if stats is None else
               f"bounds do not fix the {protocol} protocol's true matches")
        return None, f"{protocol} on {ds.name} (loader options {dict(ds.options)}): the loader {why}"
    return bounds, ""


def check_spec(spec: Spec, out: Consistency) -> None:
    """CMC monotone and in [0, 100], and mAP feasibility, for every published row of ``spec``."""
    for i, row in enumerate(spec.rows):
        for col in row_columns(spec, row):
            pub = row.published.get(col) or {}
            kp = ("rows", i, "published", col)
            cmc = _cmc(pub)
            if cmc:
                out.cmc_checked += 1
            for k, v in cmc.items():
                if not 0 <= v <= 100:
                    out.add(spec, kp, f"rank-{k} {v} is not a percentage in [0, 100]")
            ks = sorted(cmc)
            for a, b in zip(ks, ks[1:], strict=False):
                if cmc[b] < cmc[a]:
                    out.add(spec, kp, f"CMC decreases: rank-{a} {cmc[a]} > rank-{b} {cmc[b]} "
                                      f"(a CMC never decreases with the rank)")
            if pub.get("mAP") is None or not cmc:
                continue
            ev = column_eval(spec, row, col)
            mc = MapCheck(spec, row.name, col, row.runnable, ev.ap, pub["mAP"])
            bounds, mc.reason = _bounds(spec, col, ev.protocol)
            if bounds is not None:
                boxes = {k: tuple(x / 100 for x in printed_interval(v)) for k, v in cmc.items()}
                mc.intervals = {}
                for ap in AP_DEFINITIONS:
                    iv = map_interval(boxes, bounds, ap)
                    mc.intervals[ap] = None if iv is None else (100 * iv[0], 100 * iv[1])
            out.maps.append(mc)
            _judge(mc, kp, out)


def _judge(mc: MapCheck, kp: tuple, out: Consistency) -> None:
    """A runnable row whose spec AP cannot give its printed mAP, while another can, is an
    error; a quoted row's AP definition is its authors' (reported, never an error)."""
    if not mc.decidable or not mc.runnable or mc.ap in mc.feasible:
        return
    iv = mc.intervals[mc.ap]
    where = "no ranking has this CMC" if iv is None else f"[{iv[0]:.2f}, {iv[1]:.2f}] %"
    fits = ", ".join(f"ap: {a} ([{mc.intervals[a][0]:.2f}, {mc.intervals[a][1]:.2f}] %)"
                     for a in mc.feasible)
    out.add(mc.spec, kp, f"row {mc.row!r}: published mAP {mc.mAP} is infeasible under ap: "
                         f"{mc.ap}; its CMC allows {where} ({printed_note()}). "
                         + (f"Fits: {fits}." if fits else
                            "No AP definition the project implements fits."))


def printed_note() -> str:
    return "printed numbers ± half their last digit"


def identical_pairs(specs: list[Spec]) -> list[tuple]:
    """Every pair of rows of different specs printing the same numbers on the same dataset
    (at least 2 equal metrics, none differing): ``(spec_a, index_a, column_a, spec_b, index_b,
    column_b, {metric: value})``, one per row pair (its first matching column)."""
    rows = [(s, i, r) for s in specs for i, r in enumerate(s.rows)]
    out = []
    for n, (sa, ia, ra) in enumerate(rows):
        for sb, ib, rb in rows[n + 1:]:
            if sa is sb:
                continue
            hit = next(((ca, cb, nums) for ca in row_columns(sa, ra) for cb in row_columns(sb, rb)
                        if sb.datasets[cb].name == sa.datasets[ca].name
                        and len(nums := shared_numbers(ra.published.get(ca) or {},
                                                       rb.published.get(cb) or {})) >= 2), None)
            if hit:
                out.append((sa, ia, hit[0], sb, ib, hit[1], hit[2]))
    return out


def check_shared(specs: list[Spec], checked: set[str], out: Consistency) -> None:
    """Rows of different specs printing the same numbers (``identical_pairs``) must be linked
    by ``same_as`` chains (declared ones are checked at load). Errors go to every spec in
    ``checked`` (paths) holding one of the two rows."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for s in specs:
        for r in s.rows:
            for ref in declared_refs(s, r).values():
                a, b = find(row_ref(s, r)), find(ref)
                if a != b:
                    parent[a] = b
    for sa, ia, ca, sb, ib, cb, nums in identical_pairs(specs):
        ra, rb = sa.rows[ia], sb.rows[ib]
        if find(row_ref(sa, ra)) == find(row_ref(sb, rb)):
            continue
        printed = ", ".join(f"{m} {v}" for m, v in nums.items())
        for s, i, c, other in ((sa, ia, ca, row_ref(sb, rb)), (sb, ib, cb, row_ref(sa, ra))):
            if s.path in checked:
                out.add(s, ("rows", i, "published", c),
                        f"prints the same {s.datasets[c].name} numbers as {other} ({printed}) "
                        f"without declaring it: add same_as: {other!r} (a runnable row then "
                        "shares that row's training) on one of the two")


def check_specs(specs: list[Spec], universe: list[Spec] | None = None) -> Consistency:
    """Every check over ``specs``; identical rows are looked for among ``universe`` (default:
    ``specs``; pass every spec of the project so that one table is checked against all)."""
    out = Consistency()
    for s in specs:
        check_spec(s, out)
    pool = {s.path: s for s in (universe or []) + specs}
    check_shared(list(pool.values()), {s.path for s in specs}, out)
    return out


def table_line(spec: Spec, checks: list[MapCheck]) -> str:
    """One line for the report: which AP definitions the table's runnable rows' published mAP
    is consistent with (quoted rows follow their own authors' definitions: counted apart)."""
    mine = [c for c in checks if c.spec.path == spec.path and c.runnable]
    if not mine:
        return "no runnable row prints both an mAP and a CMC: nothing to check"
    dec = [c for c in mine if c.decidable]
    if not dec:
        return f"mAP feasibility not decidable: {mine[0].reason}"
    fits = [a for a in AP_DEFINITIONS if all(a in c.feasible for c in dec)]
    used = sorted({c.ap for c in dec})
    what = (f"consistent with the {' and the '.join(AP_LABELS[a] for a in fits)}"
            + (" only" if len(fits) == 1 else "") if fits else
            "consistent with no single AP definition")
    return (f"published mAP is {what} ({len(dec)} of {len(mine)} runnable row×column decidable; "
            f"the spec evaluates with ap: {', '.join(used)})")


@dataclass
class TableConsistency:
    """What the report shows of a table's consistency: ``line`` (``table_line``) and the
    messages of its own errors (infeasible AP definition, decreasing CMC)."""

    line: str
    errors: list[str] = field(default_factory=list)


def table_consistency(spec: Spec) -> TableConsistency:
    """The consistency of ``spec``'s own published numbers (``check_spec``; identical rows
    across tables are ``validate``'s, which sees every spec)."""
    out = Consistency()
    check_spec(spec, out)
    return TableConsistency(table_line(spec, out.maps),
                            [m for _, m in out.errors.get(spec.path, [])])
