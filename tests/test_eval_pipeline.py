"""evaluate_cell on tiny hand-built datasets whose answers are computed by hand."""

from pathlib import Path

import numpy as np
import pytest
import torch

from reid_bench.data.base import ReidDataset, Sample
from reid_bench.eval import PROTOCOLS, EvalResult, evaluate_cell, evaluate_rank


def S(name, pid, cam, bbox=None):
    return Sample(f"/toy/{name}.jpg", pid, cam, bbox)


def embedder(features: dict):
    """embed() that looks features up by image stem (what the runner's embed would compute)."""
    def embed(samples):
        return torch.tensor([features[Path(s.path).stem] for s in samples], dtype=torch.float32)
    return embed


def dataset(splits, **kw):
    splits.setdefault("train", [])
    return ReidDataset("toy", Path("/toy"), splits, "fp", True, **kw)


# --- Market multiple query --------------------------------------------------------------------
# query (id 1, cam 0) at 0; its gt_bbox images in cam 0 at 2 and 4 (one in cam 1 at 100 must
# not be pooled); gallery: id 1 (cam 1) at 4.2, id 2 (cam 1) at 2.9.
MQ_FEATS = {"q": [0.0], "m1": [2.0], "m2": [4.0], "m3": [100.0], "ga": [4.2], "gb": [2.9]}
MQ_DS = dataset({"query": [S("q", 1, 0)], "mq_query": [S("m1", 1, 0), S("m2", 1, 0), S("m3", 1, 1)],
                 "gallery": [S("ga", 1, 1), S("gb", 2, 1)]})


def test_single_query_baseline():
    r = evaluate_cell("market", MQ_DS, embedder(MQ_FEATS), max_rank=2)
    # nearest is the wrong id (2.9 < 4.2): match at rank 2 → rank-1 0 %, AP 1/2
    assert r.metrics == {"rank1": 0.0, "mAP": 50.0}
    assert r.cmc == [0.0, 1.0] and r.num_queries == 1 and r.num_skipped_queries == 0


@pytest.mark.parametrize("pooling,rank1,mAP", [("avg", 0.0, 50.0), ("max", 100.0, 100.0)])
def test_multiple_query_pooling_within_identity_and_camera(pooling, rank1, mAP):
    # avg → 3: 2.9 is nearer (0.1 vs 1.2); max → 4: 4.2 is nearer (0.2 vs 1.1)
    r = evaluate_cell("market_mq", MQ_DS, embedder(MQ_FEATS), max_rank=2, options={"pooling": pooling})
    assert r.metrics == {"rank1": rank1, "mAP": mAP}
    assert r.details["options"]["pooling"] == pooling


# --- CUHK03 classic single shot ---------------------------------------------------------------
# query (id 1, cam 0) at 0; gallery (cam 1): id 1 at 1 and 3, id 2 at 2. Each repeat keeps one
# id-1 image: at 1 → rank 1 (AP 1), at 3 → rank 2 (AP 1/2); so mAP = 50 + rank1 / 2 exactly.
C3_FEATS = {"q": [0.0], "g1": [1.0], "g3": [3.0], "g2": [2.0]}
C3_DS = dataset({"query": [S("q", 1, 0)], "gallery": [S("g1", 1, 1), S("g3", 1, 1), S("g2", 2, 1)]})


def test_cuhk03_classic_single_shot_sampling():
    r = evaluate_cell("cuhk03_classic", C3_DS, embedder(C3_FEATS), max_rank=2, options={"repeats": 400}, seed=3)
    assert 35 < r.metrics["rank1"] < 65  # 4σ band around 50 %
    assert r.metrics["mAP"] == pytest.approx(50 + r.metrics["rank1"] / 2)
    assert r.metrics["rank1"] not in (0.0, 100.0)  # really sampled per repeat
    again = evaluate_cell("cuhk03_classic", C3_DS, embedder(C3_FEATS), max_rank=2, options={"repeats": 400}, seed=3)
    assert again.metrics == r.metrics  # seeded
    assert r.details["repeats"] == 400


def test_cuhk03_classic_default_repeats_and_trapezoid():
    assert PROTOCOLS["cuhk03_classic"].options["repeats"] == 10
    r = evaluate_cell("cuhk03_classic", C3_DS, embedder(C3_FEATS), max_rank=2, ap="market_matlab",
                      options={"repeats": 200})
    # trapezoid AP: rank 1 → 1, rank 2 → (0 + 1/2)/2 = 1/4
    assert r.metrics["mAP"] == pytest.approx(25 + 0.75 * r.metrics["rank1"])


# --- Oxford5k ---------------------------------------------------------------------------------
OX_FEATS = {"q": [0.0], **{f"i{k}": [float(k + 1)] for k in range(6)}}
OX_DS = dataset({"query": [S("q", 1, 0, bbox=(0, 0, 10, 10))], "gallery": [S(f"i{k}", 0, 0) for k in range(6)]},
                meta={"oxford_gt": [{"query": "q", "good": {"i1"}, "ok": {"i3"}, "junk": {"i2"}}]})


def test_oxford5k_good_ok_positive_junk_ignored():
    # ranked: i0 (neg), i1 (good), i2 (junk, dropped), i3 (ok), i4, i5
    r = evaluate_cell("oxford5k", OX_DS, embedder(OX_FEATS), ap="market_matlab")
    # compute_ap: 1/2 × (0 + 1/2)/2 + 1/2 × (1/2 + 2/3)/2 = 1/8 + 7/24 = 5/12
    assert r.metrics == {"mAP": pytest.approx(100 * 5 / 12)}
    assert r.cmc is None
    r = evaluate_cell("oxford5k", OX_DS, embedder(OX_FEATS), ap="standard")
    assert r.metrics["mAP"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)


# --- Market + distractors (streamed) ----------------------------------------------------------

def test_market500k_sweep_equals_in_memory_galleries():
    rng = np.random.default_rng(0)
    q = [S(f"q{i}", int(p), 0) for i, p in enumerate(rng.integers(1, 6, 12))]
    g = [S(f"g{i}", int(p), 1) for i, p in enumerate(rng.integers(1, 6, 40))]
    dis = [S(f"d{i}", 0, 1) for i in range(95)]
    dis[20] = S("d20", q[0].pid, 1)  # a true match hidden in the stream must be found up front
    feats = {Path(s.path).stem: rng.normal(size=4).tolist() for s in q + g + dis}
    ds = dataset({"query": q, "gallery": g},
                 streams={"distractors": lambda: iter([dis[i:i + 10] for i in range(0, 95, 10)])})
    r = evaluate_cell("market500k", ds, embedder(feats), max_rank=5,
                      options={"gallery_sizes": [30, 60], "chunk_size": 16})
    for n in (30, 60, 95):
        ref = evaluate_cell("market", dataset({"query": q, "gallery": g + dis[:n]}), embedder(feats), max_rank=5)
        assert r.metrics[f"mAP@{40 + n}"] == pytest.approx(ref.metrics["mAP"], abs=1e-9)
        assert r.metrics[f"rank1@{40 + n}"] == pytest.approx(ref.metrics["rank1"], abs=1e-9)
    assert r.metrics["mAP"] == r.metrics["mAP@135"]


# --- contract ---------------------------------------------------------------------------------

def test_result_contract_and_details():
    r = evaluate_cell("market", MQ_DS, embedder(MQ_FEATS), ap="market_matlab", distance="cosine")
    assert isinstance(r, EvalResult)
    assert set(r.metrics) == {"rank1", "rank5", "rank10", "rank20", "mAP"}
    assert len(r.cmc) == 50
    assert r.details["protocol"] == "market" and r.details["ap_definition"] == "market_matlab"
    assert r.details["distance"] == "cosine"
    for name, proto in PROTOCOLS.items():
        assert name and proto.description and proto.splits


def test_pipeline_agrees_with_evaluate_rank():
    rng = np.random.default_rng(1)
    q = [S(f"q{i}", int(p), int(c)) for i, (p, c) in enumerate(zip(rng.integers(1, 5, 10), rng.integers(0, 3, 10), strict=True))]
    g = [S(f"g{i}", int(p), int(c)) for i, (p, c) in enumerate(zip(rng.integers(0, 5, 30), rng.integers(0, 3, 30), strict=True))]
    feats = {Path(s.path).stem: rng.normal(size=3).tolist() for s in q + g}
    r = evaluate_cell("market", dataset({"query": q, "gallery": g}), embedder(feats), distance="sqeuclidean")
    qf = np.array([feats[f"q{i}"] for i in range(10)])
    gf = np.array([feats[f"g{i}"] for i in range(30)])
    D = ((qf[:, None] - gf[None]) ** 2).sum(-1)
    _, mAP = evaluate_rank(D, [s.pid for s in q], [s.pid for s in g], [s.camid for s in q], [s.camid for s in g])
    assert r.metrics["mAP"] == pytest.approx(100 * mAP, abs=1e-4)


@pytest.mark.parametrize("kw,msg", [
    ({"protocol": "market1501"}, "valid values: .*market, "),
    ({"distance": "l1"}, "euclidean, sqeuclidean, cosine"),
    ({"ap": "voc"}, "standard, market_matlab"),
    ({"options": {"pooling": "avg"}}, "unknown option 'pooling'"),
    ({"rerank": {"k": 3}}, "k1, k2, lambda_value"),
])
def test_bad_arguments_name_the_valid_values(kw, msg):
    args = {"protocol": "market", "dataset": MQ_DS, "embed": embedder(MQ_FEATS), **kw}
    with pytest.raises(ValueError, match=msg):
        evaluate_cell(**args)


def test_missing_split_is_reported():
    with pytest.raises(ValueError, match="mq_query"):
        evaluate_cell("market_mq", dataset({"query": MQ_DS.query, "gallery": MQ_DS.gallery}), embedder(MQ_FEATS))
