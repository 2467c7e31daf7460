"""Exact CMC/mAP over a gallery streamed in chunks, with bounded memory.

The true matches of every query are known up front (from identities), so their distances are
computed first; then each gallery chunk only adds, per query, counts of wrong matches ranked
before each match (see ``ranking.py``). Counts add up over chunks, so the answer equals the
in-memory one exactly while only one Q×chunk distance block is alive at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .ranking import RankResult, Relevance, count_block, metrics_from_hist, new_hist, sort_matches


class StreamingRankEvaluator:
    """Accumulate rank counts chunk by chunk.

    ``rel``: relevance in the global gallery index space (all chunks concatenated);
    ``match_dist``: distance of every pair in ``rel.match_q``/``rel.match_g``. Call
    ``add(distmat_chunk, start)`` for each chunk (any order, each gallery index once), then
    ``result(max_rank, ap)``.
    """

    def __init__(self, rel: Relevance, match_dist: torch.Tensor, block_rows: int | None = None):
        self.rel = rel
        self.sm = sort_matches(rel, match_dist)
        self.hist = new_hist(self.sm)
        self.block_rows = block_rows
        self.seen = 0

    def add(self, distmat_chunk: torch.Tensor, start: int) -> None:
        """Count chunk ``distmat_chunk`` (Q×C) holding gallery items ``start..start+C-1``."""
        D = distmat_chunk
        if D.dtype not in (torch.float32, torch.float64):
            D = D.float()
        step = self.block_rows or max(1, min(4096, (1 << 24) // max(1, D.shape[1])))
        for s in range(0, D.shape[0], step):
            count_block(D[s:s + step], s, start, self.sm, self.rel, self.hist)
        self.seen += D.shape[1]

    def result(self, max_rank: int = 50, ap: str = "standard") -> RankResult:
        return metrics_from_hist(self.hist, self.sm, max_rank, ap)


def evaluate_rank_chunked(chunks: Iterable[tuple[torch.Tensor, int]], rel: Relevance,
                          match_dist: torch.Tensor, *, max_rank: int = 50,
                          ap: str = "standard") -> RankResult:
    """CMC/mAP from ``(distmat_chunk, start_index)`` pairs covering the gallery; equal to the
    in-memory ``evaluate_relevance`` on the concatenated matrix."""
    ev = StreamingRankEvaluator(rel, match_dist)
    for D, start in chunks:
        ev.add(D, start)
    return ev.result(max_rank, ap)
