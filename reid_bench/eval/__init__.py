"""Evaluation core: distances, CMC/mAP (two AP definitions), k-reciprocal re-ranking, streamed
evaluation for huge galleries, and the protocols specs name (``evaluate_cell``; one module per
protocol in ``eval/protocols/``, registered in ``PROTOCOLS``)."""

from ..core.registry import PROTOCOLS
from .distance import DISTANCES, compute_distance
from .metrics import RANK_PROTOCOLS, evaluate_rank
from .pipeline import evaluate_cell
from .protocols import EvalResult, Protocol
from .protocols.cuhk03_classic import single_shot_rank
from .ranking import AP_DEFINITIONS, RankResult, Relevance, relevance_from_ids, relevance_from_lists
from .rerank import re_rank
from .streaming import StreamingRankEvaluator, evaluate_rank_chunked

__all__ = [
    "AP_DEFINITIONS", "DISTANCES", "PROTOCOLS", "RANK_PROTOCOLS", "EvalResult", "Protocol",
    "RankResult", "Relevance", "StreamingRankEvaluator", "compute_distance", "evaluate_cell",
    "evaluate_rank", "evaluate_rank_chunked", "re_rank", "relevance_from_ids",
    "relevance_from_lists", "single_shot_rank",
]
