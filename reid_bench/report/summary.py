"""The JSON summary (``report --format json``): the view model as plain data for scripts.

Every number with its verdict and flags, every claim with its comparisons, the assumptions and
the fidelity ledger, the other tiers and variants, and the provenance of every results row.
"""

from __future__ import annotations

from typing import Any

from . import claims, curves, verdicts
from .view import Number, TableView


def summary(views: list[TableView], broken: list[tuple[str, str]], stamp: str) -> dict:
    """The JSON summary: every number with its verdict, every claim with its comparisons."""
    tables = []
    for v in views:
        nums = [{**_json_number(rv.name, ds, m, n), "band": n.verdict.band, "planned": n.planned,
                 "runs": n.runs, "partial_mean": n.partial_mean}
                for rv in v.rows for (ds, m), n in rv.numbers.items()]
        tables.append({
            "paper": v.spec.paper.id, "table": v.spec.table.id, "caption": v.spec.table.caption,
            "spec": v.spec.path, "results_csv": v.csv, "page": v.page,
            "synthetic": v.synthetic, "smoke": v.smoke, "flags": v.flags,
            # Every flag of a headline number, and the other blocks (never the headline).
            "number_flags": v.number_flags,
            "blocks": [{"title": t, "flags": f} for t, f in v.blocks],
            "data_checked": v.data_checked,
            "row_verdicts": v.counts,
            "rows": {rv.name: rv.verdict for rv in v.rows},
            "numbers": nums,
            "claims": [{"kind": c.claim.kind, "statement": c.statement, "text": c.claim.text,
                        "source": c.claim.source, "status": c.status,
                        "published_status": c.published_status, "synthetic": c.synthetic,
                        "comparisons": [vars(x) for x in c.comparisons]} for c in v.claims],
            "assumptions": [vars(e) for e in v.assumptions],
            "consistency": vars(v.consistency) if v.consistency else None,
            "tier": v.tier, "variant": v.variant, "deviation": v.deviation,
            "flagged": v.flagged,
            "other_results": [{"tier": o.tier, "variant": o.variant, "labels": o.labels,
                               "numbers": [_json_number(rv.name, ds, m, n) for rv in o.rows
                                           for (ds, m), n in rv.numbers.items()
                                           if n.listed]}
                              for o in v.others],
            # Provenance of every results row (all tiers and variants): commit, dirty, config
            # hash, seed, versions, device, timestamps, tier, variant, trust flag.
            "cells": v.cells,
            # Training history of every trained model shown (report.curves): epoch and
            # monitoring rows, and where its full metrics.csv lies in the results folder.
            "training_curves": curves.as_json(v.curves),
            "ledger": {"counts": v.ledger.counts,
                       "assumptions": [vars(a) for a in v.ledger.assumptions],
                       "variants": [{"variant": r.variant, "tier": r.tier,
                                     "synthetic": r.synthetic,
                                     "numbers": [{**vars(x), "move": x.move,
                                                  "main_verdict": x.main_verdict.key,
                                                  "verdict": x.verdict.key}
                                                 for x in r.numbers]}
                                    for r in v.ledger.variants]} if v.ledger else None,
        })
    return {"generated": stamp, "tolerances_default": verdicts.DEFAULT_TOLERANCES,
            "claims_z": claims.Z, "tables": tables,
            "errors": [{"file": f, "error": e} for f, e in broken]}


def _json_number(row: str, ds: str, m: str, n: Number) -> dict[str, Any]:
    """One number of the view as JSON (its cell: row, dataset column, metric)."""
    return {"row": row, "dataset": ds, "metric": m, "published": n.published, "mean": n.mean,
            "std": n.std, "n": n.n, "values": n.values, "delta": n.delta,
            "verdict": n.verdict.key, "would_be": n.verdict.would_be, "status": n.status,
            "reason": n.reason or None, "synthetic": n.synthetic, "flag": n.flag or None,
            "flags": n.flags}
