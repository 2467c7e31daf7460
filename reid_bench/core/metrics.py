"""The metrics the suite reports: one definition every other module reads.

The spec's allowed metric names (``spec.METRIC_NAMES``), the results CSV's metric columns
(``results.METRIC_COLUMNS``), the report's default tolerance bands
(``report.verdicts.DEFAULT_TOLERANCES``) and what an evaluation protocol reports
(``eval.protocols``) all derive from ``METRICS``. No heavy imports: the spec and the results
reader import it without torch. The computations live in ``reid_bench.eval`` (``ranking.py``).

Adding a CMC rank (e.g. ``rank15``) is one entry here; a metric of another kind also needs its
value on ``eval.ranking.RankResult`` (a field named like the metric) and a test of it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """``description``: what the number is (percent); ``tolerance``: the suite-wide verdict band,
    absolute percentage points (a spec's ``tolerances`` override it); ``cmc_rank``: k for a CMC
    rank-k metric (read from the CMC curve), None for a metric read from the ``RankResult``
    field of the same name."""

    description: str
    tolerance: float
    cmc_rank: int | None = None


def _rank(k: int, tolerance: float) -> Metric:
    return Metric(f"CMC rank-{k}: % of queries whose first true match is among the {k} nearest "
                  "gallery items", tolerance, cmc_rank=k)


# Tolerance bands: re-ID papers report one training run; seed-to-seed spread of a ResNet-50 on
# Market-1501 is about ±0.5 rank-1 and ±0.7 mAP, and library differences (data loading,
# augmentation order, cuDNN) move numbers by another ~1 pt, so 2 points on the headline metrics.
# Higher ranks saturate and move less.
#: Name (as specs, CSV columns and the report write it; "@<N>" suffixes name a gallery size) →
#: definition, in the order of the results columns.
METRICS: dict[str, Metric] = {
    "rank1": _rank(1, 2.0),
    "rank5": _rank(5, 1.5),
    "rank10": _rank(10, 1.5),
    "rank20": _rank(20, 1.0),
    "mAP": Metric("mean average precision over the queries with a true match (AP as the spec's "
                  "`ap` defines it)", 2.0),
}
