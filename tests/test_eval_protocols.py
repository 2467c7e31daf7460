"""Protocols as registered classes: what each declares is what evaluate_cell checks and reports,
a new protocol needs nothing but its own class, and METRICS drives the reported metric keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reid_bench import spec
from reid_bench.core.errors import RegistryError
from reid_bench.core.metrics import METRICS, Metric
from reid_bench.core.registry import DATASETS
from reid_bench.data.base import ReidDataset, Sample
from reid_bench.eval import PROTOCOLS, RankResult, evaluate_cell
from reid_bench.eval.protocols import Protocol
from reid_bench.eval.protocols._common import embed_split, ids, rank_by_ids
from reid_bench.report import verdicts
from reid_bench.store import results


def _ds(splits, **kw):
    return ReidDataset("toy", Path("/toy"), {"train": [], **splits}, "fp", True, **kw)


def _embed(samples):
    return torch.tensor([[float(Path(s.path).stem[1:])] for s in samples])


# query q0 (id 1, cam 0) at 0; gallery g2 (id 2) at 2, g3 (id 1, cam 1) at 3: rank 2, AP 1/2.
Q = [Sample("/toy/q0.jpg", 1, 0)]
G = [Sample("/toy/g2.jpg", 2, 1), Sample("/toy/g3.jpg", 1, 1)]


@pytest.fixture
def scratch_protocols(monkeypatch):
    """PROTOCOLS with every shipped protocol, restored after the test."""
    PROTOCOLS.names()  # load every protocol module first
    monkeypatch.setattr(PROTOCOLS, "_items", dict(PROTOCOLS._items))
    monkeypatch.setattr(PROTOCOLS, "_info", dict(PROTOCOLS._info))


def test_a_new_protocol_is_one_registered_class(scratch_protocols):
    @PROTOCOLS.register("test_toy")
    class Toy(Protocol):
        description = "toy: Market rules, reports rank-1 only"
        splits = ("query", "gallery")
        meta = ("toy_key",)
        options = {"tag": "a"}
        metrics = ("rank1",)

        def evaluate(self, dataset, embed, ctx):
            q, g = dataset.splits["query"], dataset.splits["gallery"]
            res = rank_by_ids(embed_split(embed, q, ctx.device, "query"),
                              embed_split(embed, g, ctx.device, "gallery"), ids(q), ids(g), ctx)
            return self.result(res, ctx, tag=ctx.options["tag"])

    assert "test_toy" in PROTOCOLS and PROTOCOLS["test_toy"] is Toy
    assert "test_toy" in sorted(PROTOCOLS)
    # Declared needs are checked before evaluating.
    with pytest.raises(ValueError, match=r"needs dataset.meta\['toy_key'\]"):
        evaluate_cell("test_toy", _ds({"query": Q, "gallery": G}), _embed)
    with pytest.raises(ValueError, match="needs split 'gallery'"):
        evaluate_cell("test_toy", _ds({"query": Q}, meta={"toy_key": 1}), _embed)
    r = evaluate_cell("test_toy", _ds({"query": Q, "gallery": G}, meta={"toy_key": 1}), _embed,
                      options={"tag": "b"})
    assert r.metrics == {"rank1": 0.0}  # declared metrics only: the match ranks 2nd
    assert r.cmc[:2] == [0.0, 1.0]
    assert r.details["protocol"] == "test_toy" and r.details["tag"] == "b"
    assert r.details["options"] == {"tag": "b"}


def test_declared_streams_and_meta_are_required():
    with pytest.raises(ValueError, match="needs stream 'distractors'.*streams: \\(none\\)"):
        evaluate_cell("market500k", _ds({"query": Q, "gallery": G}), _embed)
    with pytest.raises(ValueError, match=r"needs dataset.meta\['oxford_gt'\]"):
        evaluate_cell("oxford5k", _ds({"query": Q, "gallery": G}), _embed)


def test_every_protocol_declares_known_metrics_and_its_needs():
    assert {"market", "market_mq", "cuhk03_classic", "cuhk03_multishot", "market500k",
            "oxford5k"} <= set(PROTOCOLS)
    for name, proto in PROTOCOLS.items():
        assert proto.description and proto.splits, name
        assert set(proto.metrics) <= set(METRICS), name
    assert PROTOCOLS["oxford5k"].metrics == ("mAP",)
    assert PROTOCOLS["oxford5k"].__module__ == "reid_bench.eval.protocols.oxford5k"
    with pytest.raises(RegistryError, match="Did you mean 'market'"):
        PROTOCOLS.get("markt")


def test_percent_metrics_follow_METRICS(monkeypatch):
    cmc = np.arange(1, 51) / 50.0  # cmc[k-1] = k/50
    res = RankResult(cmc, 0.25, np.zeros(0), 4, 0)

    class AllMetrics(Protocol):
        description, splits = "", ("query",)

        def evaluate(self, dataset, embed, ctx):  # pragma: no cover - not evaluated here
            raise AssertionError

    got = AllMetrics().percent(res, max_rank=10, suffix="@7")
    assert got == pytest.approx({"rank1@7": 2.0, "rank5@7": 10.0, "rank10@7": 20.0,
                                 "mAP@7": 25.0})  # rank20 > max_rank is left out
    # A new CMC rank is one METRICS entry.
    monkeypatch.setitem(METRICS, "rank3", Metric("CMC rank-3", 1.0, cmc_rank=3))

    class Rank3(AllMetrics):
        metrics = ("rank3", "mAP")

    assert Rank3().percent(res, max_rank=10) == pytest.approx({"rank3": 6.0, "mAP": 25.0})


def test_spec_results_and_verdicts_read_METRICS():
    assert spec.METRIC_NAMES == tuple(METRICS) == ("rank1", "rank5", "rank10", "rank20", "mAP")
    assert results.METRIC_COLUMNS == list(METRICS)
    assert verdicts.DEFAULT_TOLERANCES == {"rank1": 2.0, "rank5": 1.5, "rank10": 1.5,
                                           "rank20": 1.0, "mAP": 2.0}
    assert verdicts.tolerance("rank20@1000") == METRICS["rank20"].tolerance


def test_datasets_declare_their_check_variants():
    assert [v["images"] for v in DATASETS.info("cuhk03")["check_variants"]] == ["detected",
                                                                                "labeled"]
    assert DATASETS.info("imagefolder")["check_variants"] == []
    assert "check_variants" not in DATASETS.info("market1501")
    with pytest.raises(RegistryError, match="market1501"):
        DATASETS.info("market")
