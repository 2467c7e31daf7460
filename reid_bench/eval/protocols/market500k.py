"""Market-1501 + 500k distractors (Zheng et al., ICCV 2015): the gallery plus a streamed
distractor set, evaluated exactly in chunks (``eval/streaming.py``)."""

from __future__ import annotations

import torch

from ...core.errors import DatasetError
from ...core.registry import PROTOCOLS
from ...data.base import ReidDataset, Sample
from ..distance import compute_distance
from ..ranking import relevance_from_ids
from ..streaming import StreamingRankEvaluator
from ._common import EvalContext, EvalResult, Protocol, embed_split, ids


def stream_chunks(dataset: ReidDataset, name: str, chunk_size: int):
    """Re-chunk the dataset stream ``name`` into lists of at most ``chunk_size`` samples."""
    buf: list[Sample] = []
    for chunk in dataset.streams[name]():
        buf.extend(chunk)
        while len(buf) >= chunk_size:
            yield buf[:chunk_size]
            buf = buf[chunk_size:]
    if buf:
        yield buf


@PROTOCOLS.register("market500k")
class Market500k(Protocol):
    description = ("Market-1501 + 500k distractors: gallery = gallery split + the distractor "
                   "stream, evaluated in chunks (exact, bounded memory); optional sweep over "
                   "gallery_sizes (number of distractors added)")
    splits = ("query", "gallery")
    streams = ("distractors",)
    options = {"gallery_sizes": None, "chunk_size": 20000}

    def evaluate(self, dataset, embed, ctx: EvalContext) -> EvalResult:
        if ctx.rerank:
            raise ValueError("re-ranking over the 500k distractor gallery is not supported "
                             "(it needs the gallery×gallery distances); evaluate without rerank")
        dev, dist, max_rank = ctx.device, ctx.distance, ctx.max_rank
        chunk_size = int(ctx.options["chunk_size"])
        q, g = dataset.splits["query"], dataset.splits["gallery"]
        qp, qc = ids(q)
        # Pass 1 over the stream's labels only (no images): distractor identities and count.
        d_p, d_c = [], []
        for ch in stream_chunks(dataset, "distractors", chunk_size):
            p, c = ids(ch)
            d_p.append(p)
            d_c.append(c)
        dp = torch.cat(d_p) if d_p else torch.zeros(0, dtype=torch.long)
        dc = torch.cat(d_c) if d_c else torch.zeros(0, dtype=torch.long)
        gp, gc = ids(g)
        n_dis = dp.numel()
        sizes = sorted({int(s) for s in ctx.options["gallery_sizes"] or []})
        if sizes and sizes[-1] > n_dis:
            # A short folder would silently turn "+500k" into "+<whatever is there>".
            where = dataset.meta.get("distractor_dir", "the distractor stream")
            raise DatasetError(f"market500k: the protocol adds up to {sizes[-1]:,} distractors "
                               f"(gallery_sizes {sizes}) but {where} holds {n_dis:,}: found "
                               f"{n_dis:,}, expected at least {sizes[-1]:,}. Extract the "
                               "complete distractors_500k.zip (`reid-bench data check "
                               "market1501_500k`).")
        if n_dis not in sizes:
            sizes.append(n_dis)
        qf = embed_split(embed, q, dev, "query")
        gf = embed_split(embed, g, dev, "gallery")
        # One exact accumulator per sweep size; gallery = gallery split + first n distractors.
        evs = {}
        for n in sizes:
            allp, allc = torch.cat([gp, dp[:n]]), torch.cat([gc, dc[:n]])
            rel = relevance_from_ids(qp, qc, allp, allc)
            evs[n] = [rel, None]
        # True matches among distractors (normally none: Market distractors are id 0 / -1) must
        # be known before counting, so embed them first.
        full_rel = evs[n_dis][0]
        ng = len(g)
        dis_match = torch.unique(full_rel.match_g[full_rel.match_g >= ng]) - ng
        if dis_match.numel():
            want = set(dis_match.tolist())
            picked, k = {}, 0
            for ch in stream_chunks(dataset, "distractors", chunk_size):
                for s in ch:
                    if k in want:
                        picked[k] = s
                    k += 1
            mf = embed_split(embed, [picked[i] for i in dis_match.tolist()], dev,
                             "distractor matches")
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
        for ch in stream_chunks(dataset, "distractors", chunk_size):
            cf = embed_split(embed, ch, dev, "distractors")
            Dc = compute_distance(qf, cf, dist, device=dev, out_device=dev)
            for n in sizes:
                if offset < n:
                    evs[n][1].add(Dc[:, :n - offset], ng + offset)
            offset += len(ch)
            del Dc, cf
        metrics: dict[str, float] = {}
        per_size = {}
        for n in sizes:
            r = evs[n][1].result(max_rank, ctx.ap)
            per_size[n] = r
            metrics.update(self.percent(r, max_rank, f"@{ng + n}"))
        full = per_size[n_dis]
        metrics.update(self.percent(full, max_rank))
        return EvalResult(metrics, full.cmc.tolist(), full.num_queries, full.num_skipped, dict(
            num_distractors=n_dis, gallery_sizes=[ng + n for n in sizes], chunk_size=chunk_size,
            note="keys 'metric@N' are for a gallery of N images (gallery split + first "
                 "distractors)"))
