"""``evaluate_cell``: run one evaluation protocol of a spec on a dataset with an embedding
function, returning percent metrics for the report."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.base import ReidDataset, Sample
from ..errors import DatasetError
from ._tensor import check_choice
from .distance import DISTANCES, compute_distance
from .metrics import evaluate_relevance
from .protocols import PROTOCOLS, ProtocolInfo
from .ranking import AP_DEFINITIONS, RankResult, relevance_from_ids, relevance_from_lists
from .rerank import re_rank
from .streaming import StreamingRankEvaluator

Embed = Callable[[Sequence[Sample]], torch.Tensor]
RANKS = (1, 5, 10, 20)


@dataclass
class EvalResult:
    """``metrics`` in percent (0-100): ``rank1/5/10/20`` (those ≤ max_rank) and ``mAP``;
    ``cmc`` fractions of length max_rank (None for retrieval mAP); queries evaluated and
    skipped (no valid match); ``details``: protocol, options and definitions used."""

    metrics: dict[str, float]
    cmc: list[float] | None
    num_queries: int
    num_skipped_queries: int
    details: dict = field(default_factory=dict)


def _ids(samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor([s.pid for s in samples], dtype=torch.long),
            torch.tensor([s.camid for s in samples], dtype=torch.long))


def _metrics(res: RankResult, max_rank: int, suffix: str = "") -> dict[str, float]:
    m = {f"rank{k}{suffix}": 100.0 * float(res.cmc[k - 1]) for k in RANKS if k <= max_rank}
    m[f"mAP{suffix}"] = 100.0 * res.mAP
    return m


def _embed(embed: Embed, samples: Sequence[Sample], device: str, what: str) -> torch.Tensor:
    if not samples:
        raise ValueError(f"cannot evaluate: the {what} split is empty")
    f = embed(samples)
    if not isinstance(f, torch.Tensor) or f.ndim != 2 or f.shape[0] != len(samples):
        raise ValueError(f"embed() must return a {len(samples)}×D tensor for the {what} split, "
                         f"got {type(f).__name__} {tuple(getattr(f, 'shape', ()))}")
    return f.to(device)


def _split(dataset: ReidDataset, name: str, protocol: str) -> list[Sample]:
    if name not in dataset.splits:
        raise ValueError(f"protocol {protocol!r} needs split {name!r} of dataset {dataset.name!r}, "
                         f"which has: {', '.join(sorted(dataset.splits))}")
    return dataset.splits[name]


def _rank_eval(qf, gf, q_ids, g_ids, *, distance, ap, rerank, max_rank, device) -> RankResult:
    D = compute_distance(qf, gf, distance, device=device, out_device=device)
    if rerank:
        D = re_rank(D, compute_distance(qf, qf, distance, device=device, out_device=device),
                    compute_distance(gf, gf, distance, device=device, out_device=device), **rerank)
    rel = relevance_from_ids(q_ids[0], q_ids[1], g_ids[0], g_ids[1])
    return evaluate_relevance(D, rel, max_rank=max_rank, ap=ap)


def evaluate_cell(protocol: str, dataset: ReidDataset, embed: Embed, *, distance: str = "euclidean",
                  ap: str = "standard", rerank: dict | None = None, max_rank: int = 50,
                  seed: int = 0, device: str = "cpu", options: dict | None = None) -> EvalResult:
    """Evaluate ``protocol`` (a key of ``PROTOCOLS``) on ``dataset``.

    ``embed(samples)`` returns an N×D float tensor for a list of samples. ``distance`` is one
    of ``DISTANCES``, ``ap`` one of ``AP_DEFINITIONS``, ``rerank`` None or k-reciprocal
    parameters ``{"k1", "k2", "lambda_value"}``; ``options`` are protocol options (see
    ``PROTOCOLS[name].options``). Returns an ``EvalResult`` with percent metrics.
    """
    check_choice("protocol", protocol, tuple(PROTOCOLS))
    check_choice("distance", distance, DISTANCES)
    check_choice("ap", ap, AP_DEFINITIONS)
    info: ProtocolInfo = PROTOCOLS[protocol]
    opts = dict(info.options)
    for k, v in (options or {}).items():
        if k not in info.options:
            raise ValueError(f"unknown option {k!r} for protocol {protocol!r}; valid options: "
                             f"{', '.join(info.options) or '(none)'}")
        opts[k] = v
    if rerank is not None:
        bad = set(rerank) - {"k1", "k2", "lambda_value"}
        if bad:
            raise ValueError(f"unknown re-ranking parameter(s) {sorted(bad)}; valid: k1, k2, lambda_value")
        rerank = dict(rerank)
    kw = dict(distance=distance, ap=ap, rerank=rerank, max_rank=max_rank, device=device)
    details: dict[str, Any] = {"protocol": protocol, "protocol_description": info.description,
                               "ap_definition": ap, "distance": distance, "rerank": rerank,
                               "max_rank": max_rank, "options": opts}
    fn = _RUNNERS[protocol]
    res = fn(dataset, embed, seed=seed, opts=opts, details=details, **kw)
    return res


def _run_market(dataset, embed, *, seed, opts, details, **kw) -> EvalResult:
    proto = details["protocol"]
    q, g = _split(dataset, "query", proto), _split(dataset, "gallery", proto)
    qf = _embed(embed, q, kw["device"], "query")
    gf = _embed(embed, g, kw["device"], "gallery")
    res = _rank_eval(qf, gf, _ids(q), _ids(g), **kw)
    return EvalResult(_metrics(res, kw["max_rank"]), res.cmc.tolist(), res.num_queries,
                      res.num_skipped, details)


def _pool_multi_query(qf_ids: tuple[torch.Tensor, torch.Tensor], mq: Sequence[Sample],
                      mqf: torch.Tensor, qf: torch.Tensor, pooling: str) -> tuple[torch.Tensor, int]:
    """Each query's feature pooled over the multi-query images with its (id, camera); queries
    without any keep their own feature (count returned)."""
    mp, mc = _ids(mq)
    ncam = int(max(int(mc.max()), int(qf_ids[1].max()))) + 1
    mkey = mp * ncam + mc
    qkey = qf_ids[0] * ncam + qf_ids[1]
    uk, inv = torch.unique(mkey, return_inverse=True)
    inv = inv.to(mqf.device)
    D = mqf.shape[1]
    pooled = torch.zeros((uk.numel(), D), dtype=mqf.dtype, device=mqf.device)
    reduce = "mean" if pooling == "avg" else "amax"
    pooled = pooled.scatter_reduce(0, inv[:, None].expand(-1, D), mqf, reduce=reduce, include_self=False)
    pos = torch.searchsorted(uk, qkey).clamp(max=uk.numel() - 1)
    found = uk[pos] == qkey
    out = qf.clone()
    out[found.to(qf.device)] = pooled[pos[found].to(qf.device)]
    return out, int((~found).sum())


def _run_market_mq(dataset, embed, *, seed, opts, details, **kw) -> EvalResult:
    check_choice("pooling", opts["pooling"], ("avg", "max"))
    q = _split(dataset, "query", "market_mq")
    mq = _split(dataset, "mq_query", "market_mq")
    g = _split(dataset, "gallery", "market_mq")
    dev = kw["device"]
    qf = _embed(embed, q, dev, "query")
    mqf = _embed(embed, mq, dev, "mq_query")
    qids = _ids(q)
    qf, alone = _pool_multi_query(qids, mq, mqf, qf, opts["pooling"])
    details["queries_without_multi_query_images"] = alone
    gf = _embed(embed, g, dev, "gallery")
    res = _rank_eval(qf, gf, qids, _ids(g), **kw)
    return EvalResult(_metrics(res, kw["max_rank"]), res.cmc.tolist(), res.num_queries,
                      res.num_skipped, details)


def single_shot_rank(D: torch.Tensor, q_pids, q_camids, g_pids, g_camids, repeats: int,
                     generator: torch.Generator, max_rank: int, ap: str) -> tuple[np.ndarray, np.ndarray, int]:
    """CUHK03 classic single-shot: for each query and repeat, one random valid image per
    gallery identity (not the query's id in the query's camera, not id −1) forms the gallery.
    With one true match per query, AP = 1/rank ("standard") or (1/rank + prev)/2 (trapezoid).
    Returns per-repeat CMC (repeats×max_rank), per-repeat mAP, and the skipped-query count."""
    Dc = D.cpu().double()
    Q, G = Dc.shape
    valid = ~((g_pids[None] == q_pids[:, None]) & (g_camids[None] == q_camids[:, None]))
    valid &= (g_pids != -1)[None]
    uid, gcls = torch.unique(g_pids, return_inverse=True)
    has_match = ((g_pids[None] == q_pids[:, None]) & valid).any(1)
    cmcs, maps = [], []
    ks = torch.arange(1, max_rank + 1, dtype=torch.float64)
    gidx = torch.arange(G)
    for _ in range(repeats):
        u = torch.rand((Q, G), generator=generator, dtype=torch.float64)
        u = torch.where(valid, u, torch.full_like(u, -1.0))
        best = torch.full((Q, uid.numel()), -1.0, dtype=torch.float64)
        best = best.scatter_reduce(1, gcls[None].expand(Q, -1), u, reduce="amax", include_self=True)
        chosen = valid & (u == best.gather(1, gcls[None].expand(Q, -1)))
        is_match = chosen & (g_pids[None] == q_pids[:, None])
        md = torch.where(is_match, Dc, torch.full_like(Dc, math.inf)).min(1)
        mi = md.indices
        mdist = md.values[:, None]
        wrong = chosen & ~is_match
        before = (wrong & ((Dc < mdist) | ((Dc == mdist) & (gidx[None] < mi[:, None])))).sum(1)
        rank = (before + 1).double()[has_match]
        prec = 1.0 / rank
        if ap == "standard":
            apq = prec
        else:
            apq = (prec + torch.where(rank > 1, torch.zeros_like(rank), torch.ones_like(rank))) / 2
        cmcs.append((rank[:, None] <= ks[None]).double().mean(0).numpy() if rank.numel() else np.zeros(max_rank))
        maps.append(float(apq.mean()) if apq.numel() else 0.0)
    return np.stack(cmcs), np.asarray(maps), int((~has_match).sum())


def _run_cuhk03_classic(dataset, embed, *, seed, opts, details, **kw) -> EvalResult:
    repeats = int(opts["repeats"])
    if repeats < 1:
        raise ValueError(f"cuhk03_classic option repeats must be >= 1, got {repeats}")
    if kw["rerank"]:
        raise ValueError("re-ranking is not defined for the CUHK03 classic single-shot protocol")
    splits = dataset.meta.get("cuhk03_classic_splits")
    if not splits:
        splits = [{"query": _split(dataset, "query", "cuhk03_classic"),
                   "gallery": _split(dataset, "gallery", "cuhk03_classic")}]
    gen = torch.Generator().manual_seed(seed)
    all_cmc, all_map, nq, nskip = [], [], 0, 0
    for sp in splits:
        q, g = sp["query"], sp["gallery"]
        qf = _embed(embed, q, kw["device"], "query")
        gf = _embed(embed, g, kw["device"], "gallery")
        D = compute_distance(qf, gf, kw["distance"], device=kw["device"])
        (qp, qc), (gp, gc) = _ids(q), _ids(g)
        cmc, maps, skipped = single_shot_rank(D, qp, qc, gp, gc, repeats, gen, kw["max_rank"], kw["ap"])
        all_cmc.append(cmc.mean(0))
        all_map.append(maps.mean())
        nq += len(q)
        nskip += skipped
    cmc = np.mean(all_cmc, 0)
    res = RankResult(cmc, float(np.mean(all_map)), np.zeros(0), nq, nskip)
    details.update(num_splits=len(splits), repeats=repeats, seed=seed,
                   per_split_rank1=[100.0 * float(c[0]) for c in all_cmc],
                   per_split_mAP=[100.0 * float(m) for m in all_map],
                   rank1_std_over_splits=100.0 * float(np.std([c[0] for c in all_cmc])))
    return EvalResult(_metrics(res, kw["max_rank"]), cmc.tolist(), nq, nskip, details)


def _stream_chunks(dataset: ReidDataset, name: str, chunk_size: int):
    """Re-chunk the dataset stream ``name`` into lists of at most ``chunk_size`` samples."""
    if name not in dataset.streams:
        raise ValueError(f"protocol 'market500k' needs stream {name!r} of dataset {dataset.name!r}, "
                         f"which has streams: {', '.join(sorted(dataset.streams)) or '(none)'}")
    buf: list[Sample] = []
    for chunk in dataset.streams[name]():
        buf.extend(chunk)
        while len(buf) >= chunk_size:
            yield buf[:chunk_size]
            buf = buf[chunk_size:]
    if buf:
        yield buf


def _run_market500k(dataset, embed, *, seed, opts, details, **kw) -> EvalResult:
    if kw["rerank"]:
        raise ValueError("re-ranking over the 500k distractor gallery is not supported "
                         "(it needs the gallery×gallery distances); evaluate without rerank")
    dev, dist, max_rank, ap = kw["device"], kw["distance"], kw["max_rank"], kw["ap"]
    chunk_size = int(opts["chunk_size"])
    q, g = _split(dataset, "query", "market500k"), _split(dataset, "gallery", "market500k")
    qp, qc = _ids(q)
    # Pass 1 over the stream's labels only (no images): distractor identities and count.
    d_p, d_c = [], []
    for ch in _stream_chunks(dataset, "distractors", chunk_size):
        p, c = _ids(ch)
        d_p.append(p)
        d_c.append(c)
    dp = torch.cat(d_p) if d_p else torch.zeros(0, dtype=torch.long)
    dc = torch.cat(d_c) if d_c else torch.zeros(0, dtype=torch.long)
    gp, gc = _ids(g)
    n_dis = dp.numel()
    sizes = sorted({int(s) for s in opts["gallery_sizes"] or []})
    if sizes and sizes[-1] > n_dis:
        # A short folder would silently turn "+500k" into "+<whatever is there>".
        where = dataset.meta.get("distractor_dir", "the distractor stream")
        raise DatasetError(f"market500k: the protocol adds up to {sizes[-1]:,} distractors "
                           f"(gallery_sizes {sizes}) but {where} holds {n_dis:,}: found "
                           f"{n_dis:,}, expected at least {sizes[-1]:,}. Extract the complete "
                           "distractors_500k.zip (`reid-bench data check market1501_500k`).")
    if n_dis not in sizes:
        sizes.append(n_dis)
    qf = _embed(embed, q, dev, "query")
    gf = _embed(embed, g, dev, "gallery")
    # One exact accumulator per sweep size; gallery = gallery split + first n distractors.
    evs = {}
    for n in sizes:
        allp, allc = torch.cat([gp, dp[:n]]), torch.cat([gc, dc[:n]])
        rel = relevance_from_ids(qp, qc, allp, allc)
        evs[n] = [rel, None]
    # True matches among distractors (normally none: Market distractors are id 0 / -1) must be
    # known before counting, so embed them first.
    full_rel = evs[n_dis][0]
    ng = len(g)
    dis_match = torch.unique(full_rel.match_g[full_rel.match_g >= ng]) - ng
    if dis_match.numel():
        want = set(dis_match.tolist())
        picked, k = {}, 0
        for ch in _stream_chunks(dataset, "distractors", chunk_size):
            for s in ch:
                if k in want:
                    picked[k] = s
                k += 1
        mf = _embed(embed, [picked[i] for i in dis_match.tolist()], dev, "distractor matches")
        mf_index = {int(i) + ng: k for k, i in enumerate(dis_match.tolist())}
    Dg = compute_distance(qf, gf, dist, device=dev, out_device=dev)
    Dm = compute_distance(qf, mf, dist, device=dev) if dis_match.numel() else None
    for slot in evs.values():
        rel = slot[0]
        md = torch.empty(rel.match_q.numel(), dtype=Dg.dtype)
        in_g = rel.match_g < ng
        md[in_g] = Dg[rel.match_q[in_g].to(dev), rel.match_g[in_g].to(dev)].cpu()
        if bool((~in_g).any()):
            rows = torch.tensor([mf_index[int(x)] for x in rel.match_g[~in_g]])
            md[~in_g] = Dm[rel.match_q[~in_g], rows].to(Dg.dtype).cpu()
        slot[1] = StreamingRankEvaluator(rel, md)
        slot[1].add(Dg, 0)
    del Dg, Dm
    offset = 0
    for ch in _stream_chunks(dataset, "distractors", chunk_size):
        cf = _embed(embed, ch, dev, "distractors")
        Dc = compute_distance(qf, cf, dist, device=dev, out_device=dev)
        for n in sizes:
            if offset < n:
                evs[n][1].add(Dc[:, :n - offset], ng + offset)
        offset += len(ch)
        del Dc, cf
    metrics: dict[str, float] = {}
    per_size = {}
    for n in sizes:
        r = evs[n][1].result(max_rank, ap)
        per_size[n] = r
        metrics.update(_metrics(r, max_rank, f"@{ng + n}"))
    full = per_size[n_dis]
    metrics.update(_metrics(full, max_rank))
    details.update(num_distractors=n_dis, gallery_sizes=[ng + n for n in sizes], chunk_size=chunk_size,
                   note="keys 'metric@N' are for a gallery of N images (gallery split + first distractors)")
    return EvalResult(metrics, full.cmc.tolist(), full.num_queries, full.num_skipped, details)


def _stem(path: str) -> str:
    return Path(path).stem


def _run_oxford5k(dataset, embed, *, seed, opts, details, **kw) -> EvalResult:
    gt = dataset.meta.get("oxford_gt")
    if not gt:
        raise ValueError(f"protocol 'oxford5k' needs dataset.meta['oxford_gt'] (dataset {dataset.name!r})")
    q, g = _split(dataset, "query", "oxford5k"), _split(dataset, "gallery", "oxford5k")
    if len(gt) != len(q):
        raise ValueError(f"oxford5k: {len(gt)} ground-truth entries but {len(q)} query samples")
    names = {_stem(s.path): i for i, s in enumerate(g)}
    pos, junk, missing = [], [], 0
    for e in gt:
        p = [names[n] for n in (set(e["good"]) | set(e["ok"])) if n in names]
        j = [names[n] for n in e["junk"] if n in names]
        missing += len(set(e["good"]) | set(e["ok"]) | set(e["junk"])) - len(p) - len(j)
        pos.append(p)
        junk.append(j)
    dev = kw["device"]
    qf = _embed(embed, q, dev, "query")
    gf = _embed(embed, g, dev, "gallery")
    D = compute_distance(qf, gf, kw["distance"], device=dev, out_device=dev)
    if kw["rerank"]:
        D = re_rank(D, compute_distance(qf, qf, kw["distance"], device=dev, out_device=dev),
                    compute_distance(gf, gf, kw["distance"], device=dev, out_device=dev), **kw["rerank"])
    rel = relevance_from_lists(len(q), len(g), pos, junk)
    res = evaluate_relevance(D, rel, max_rank=1, ap=kw["ap"])
    details.update(ground_truth_names_not_in_gallery=missing,
                   note="official Oxford compute_ap is the trapezoid rule = ap 'market_matlab'")
    return EvalResult({"mAP": 100.0 * res.mAP}, None, res.num_queries, res.num_skipped, details)


_RUNNERS = {
    "market": _run_market,
    "cuhk03_multishot": _run_market,
    "market_mq": _run_market_mq,
    "cuhk03_classic": _run_cuhk03_classic,
    "market500k": _run_market500k,
    "oxford5k": _run_oxford5k,
}
assert set(_RUNNERS) == set(PROTOCOLS)
