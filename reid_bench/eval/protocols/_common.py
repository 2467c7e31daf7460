"""What every protocol shares: the ``Protocol`` base class, the plain context and result types,
and the embedding/ranking steps most protocols are made of.

The leading underscore keeps the registry from importing this module as a protocol module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ...core.metrics import METRICS
from ...data.base import GalleryStats, ReidDataset, Sample
from ..ap_bounds import MatchBounds
from ..distance import compute_distance
from ..metrics import evaluate_relevance
from ..ranking import RankResult, relevance_from_ids
from ..rerank import re_rank

Embed = Callable[[Sequence[Sample]], torch.Tensor]


@dataclass
class EvalResult:
    """``metrics`` in percent (0-100): the protocol's ``metrics`` (ranks only those ≤ max_rank);
    ``cmc`` fractions of length max_rank (None for retrieval mAP); queries evaluated and
    skipped (no valid match); ``details``: protocol, options and definitions used."""

    metrics: dict[str, float]
    cmc: list[float] | None
    num_queries: int
    num_skipped_queries: int
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EvalContext:
    """The validated evaluation settings ``evaluate_cell`` hands a protocol: its registered
    ``protocol`` name, ``distance`` (``DISTANCES``), ``ap`` (``AP_DEFINITIONS``), ``rerank``
    (None or k-reciprocal parameters), ``max_rank``, ``seed``, ``device`` and its ``options``
    (defaults filled in)."""

    protocol: str
    distance: str
    ap: str
    rerank: dict | None
    max_rank: int
    seed: int
    device: str
    options: dict[str, Any]


class Protocol(ABC):
    """Base class of a registered evaluation protocol. Subclasses declare ``description`` (one
    line for the report), ``splits`` (the dataset splits it embeds), ``streams`` (streamed
    splits), ``meta`` (``dataset.meta`` keys it reads), ``options`` (accepted options with their
    defaults) and ``metrics`` (``METRICS`` keys it reports), and implement ``evaluate``."""

    description: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]
    streams: ClassVar[tuple[str, ...]] = ()
    meta: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[dict[str, Any]] = {}
    metrics: ClassVar[tuple[str, ...]] = tuple(METRICS)

    @abstractmethod
    def evaluate(self, dataset: ReidDataset, embed: Embed, ctx: EvalContext) -> EvalResult:
        """Metrics of ``embed`` on ``dataset``; ``details`` holds only what this protocol adds
        (``evaluate_cell`` adds the settings)."""

    def match_bounds(self, stats: GalleryStats | None) -> MatchBounds | None:
        """What this protocol guarantees every evaluated query (true matches, gallery size)
        on a dataset whose published statistics are ``stats`` (the loader's
        ``gallery_stats``), for ``validate --consistency``; None: nothing (not decidable)."""
        return None

    def percent(self, res: RankResult, max_rank: int, suffix: str = "") -> dict[str, float]:
        """This protocol's ``metrics`` of ``res`` in percent, each key suffixed (``@<N>``)."""
        out = {}
        for name in self.metrics:
            k = METRICS[name].cmc_rank
            if k is None:
                out[name + suffix] = 100.0 * float(getattr(res, name))
            elif k <= max_rank:
                out[name + suffix] = 100.0 * float(res.cmc[k - 1])
        return out

    def result(self, res: RankResult, ctx: EvalContext, **details: Any) -> EvalResult:
        """The ``EvalResult`` of a ranking ``res`` (metrics, CMC, query counts, ``details``)."""
        return EvalResult(self.percent(res, ctx.max_rank), res.cmc.tolist(), res.num_queries,
                          res.num_skipped, details)


def ids(samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    """(pids, camids) of ``samples`` as long tensors."""
    return (torch.tensor([s.pid for s in samples], dtype=torch.long),
            torch.tensor([s.camid for s in samples], dtype=torch.long))


def embed_split(embed: Embed, samples: Sequence[Sample], device: str, what: str) -> torch.Tensor:
    """``embed(samples)`` on ``device``, checked to be a len(samples)×D tensor; ``what`` names
    the split in errors."""
    if not samples:
        raise ValueError(f"cannot evaluate: the {what} split is empty")
    f = embed(samples)
    if not isinstance(f, torch.Tensor) or f.ndim != 2 or f.shape[0] != len(samples):
        raise ValueError(f"embed() must return a {len(samples)}×D tensor for the {what} split, "
                         f"got {type(f).__name__} {tuple(getattr(f, 'shape', ()))}")
    return f.to(device)


def ranking_distance(qf: torch.Tensor, gf: torch.Tensor, ctx: EvalContext) -> torch.Tensor:
    """Query × gallery distance on ``ctx.device``, k-reciprocal re-ranked when ``ctx.rerank``."""
    dev, dist = ctx.device, ctx.distance
    D = compute_distance(qf, gf, dist, device=dev, out_device=dev)
    if ctx.rerank:
        D = re_rank(D, compute_distance(qf, qf, dist, device=dev, out_device=dev),
                    compute_distance(gf, gf, dist, device=dev, out_device=dev), **ctx.rerank)
    return D


def rank_by_ids(qf: torch.Tensor, gf: torch.Tensor, q_ids, g_ids, ctx: EvalContext) -> RankResult:
    """Market-rule ranking (``relevance_from_ids``) of query features ``qf`` against gallery
    features ``gf``; ``q_ids``/``g_ids`` are ``ids(...)`` pairs."""
    rel = relevance_from_ids(q_ids[0], q_ids[1], g_ids[0], g_ids[1])
    return evaluate_relevance(ranking_distance(qf, gf, ctx), rel, max_rank=ctx.max_rank,
                              ap=ctx.ap)
