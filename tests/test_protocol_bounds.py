"""What protocols guarantee a query (``Protocol.match_bounds``, read by ``validate
--consistency``) and the CUHK03 ``both`` query view (queries against other cameras only)."""

from __future__ import annotations

import pytest
import torch

from reid_bench.data.base import GalleryStats, ReidDataset, Sample
from reid_bench.eval import PROTOCOLS, evaluate_cell
from reid_bench.eval.ap_bounds import MatchBounds
from reid_bench.eval.protocols.cuhk03_classic import single_shot_rank

STATS = GalleryStats(ids=100, matches=(1, 5), images=500)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_every_protocol_says_what_it_guarantees(name):
    proto = PROTOCOLS.get(name)()
    assert proto.match_bounds(None) is None  # nothing declared: not decidable
    got = proto.match_bounds(STATS)
    assert got is None or isinstance(got, MatchBounds)


def test_single_shot_and_multi_shot_bounds():
    assert PROTOCOLS.get("cuhk03_classic")().match_bounds(STATS) == MatchBounds(1, 1, 100)
    assert PROTOCOLS.get("cuhk03_multishot")().match_bounds(STATS) == MatchBounds(1, 5, 500)


@pytest.mark.parametrize("other_cameras,rank", [(False, 2), (True, 1)])
def test_both_view_ranks_against_other_cameras_only(other_cameras, rank):
    """A query of id 1 in camera 0; the gallery holds id 2 in camera 0 (closest), id 1 in
    camera 1 and id 3 in camera 1. open-reid's separate_camera_set drops the camera-0 image."""
    q_pids, q_cams = torch.tensor([1]), torch.tensor([0])
    g_pids, g_cams = torch.tensor([2, 1, 3]), torch.tensor([0, 1, 1])
    D = torch.tensor([[0.1, 0.2, 0.3]])
    cmc, maps, skipped = single_shot_rank(D, q_pids, q_cams, g_pids, g_cams, 3,
                                          torch.Generator().manual_seed(0), 3, "standard",
                                          other_cameras=other_cameras)
    assert skipped == 0
    assert maps.tolist() == [1.0 / rank] * 3


def _embed(samples):
    return torch.tensor([[float(s.pid), float(s.camid)] for s in samples])


def test_multishot_refuses_the_both_view():
    s = [Sample("a", 1, 0), Sample("b", 1, 1)]
    ds = ReidDataset(name="cuhk03", root=".", splits={"query": s, "gallery": s},
                     fingerprint="x", meta={"query_view": "both"})
    with pytest.raises(ValueError, match="query_view 'both' is defined for cuhk03_classic"):
        evaluate_cell("cuhk03_multishot", ds, _embed)
