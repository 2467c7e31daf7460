"""Exact CMC/mAP over a gallery streamed in chunks, with bounded memory.

The true matches of every query are known up front (from identities), so their distances are
computed first; then each gallery chunk only adds, per query, counts of wrong matches ranked
before each match (see ``ranking.py``). Counts add up over chunks, so the answer equals the
in-memory one exactly while only one Q×chunk distance block is alive at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .ranking import (
    RankResult,
    Relevance,
    count_block,
    metrics_from_counts,
    new_counts,
    sort_matches,
)


class StreamingRankEvaluator:
    """Accumulate rank counts chunk by chunk.

    ``rel``: relevance in the global gallery index space (all chunks concatenated);
    ``match_dist``: distance of every pair in ``rel.match_q``/``rel.match_g`` (its dtype,
    float32 or float64, is the one every chunk is compared in); ``threads`` as in
    ``evaluate_rank``. Call
    ``add(distmat_chunk, start)`` for each chunk (any order, each gallery index once), then
    ``result(max_rank, ap)``.
    """

    def __init__(self, rel: Relevance, match_dist: torch.Tensor, threads: int | None = None):
        self.rel = rel
        self.sm = sort_matches(rel, match_dist)
        self.counts = new_counts(self.sm)
        self.threads = threads
        self.seen = 0

    def add(self, distmat_chunk: torch.Tensor, start: int) -> None:
        """Count chunk ``distmat_chunk`` (Q×C) holding gallery items ``start..start+C-1``."""
        count_block(distmat_chunk, 0, start, self.sm, self.counts, threads=self.threads)
        self.seen += distmat_chunk.shape[1]

    def result(self, max_rank: int = 50, ap: str = "standard") -> RankResult:
        return metrics_from_counts(self.counts, self.sm, max_rank, ap)


def evaluate_rank_chunked(chunks: Iterable[tuple[torch.Tensor, int]], rel: Relevance,
                          match_dist: torch.Tensor, *, max_rank: int = 50,
                          ap: str = "standard") -> RankResult:
    """CMC/mAP from ``(distmat_chunk, start_index)`` pairs covering the gallery; equal to the
    in-memory ``evaluate_relevance`` on the concatenated matrix."""
    ev = StreamingRankEvaluator(rel, match_dist)
    for D, start in chunks:
        ev.add(D, start)
    return ev.result(max_rank, ap)
