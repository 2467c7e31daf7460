"""The evaluation protocols a spec can name: what each needs and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProtocolInfo:
    """``name`` as specs write it; ``description`` one line for the report; ``splits`` the
    dataset splits it embeds (``streams`` the streamed ones, ``meta`` the ``dataset.meta`` keys
    it reads); ``options`` the accepted options with their defaults; ``metrics`` the metric keys
    it reports (percent)."""

    name: str
    description: str
    splits: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    streams: tuple[str, ...] = ()
    meta: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("rank1", "rank5", "rank10", "rank20", "mAP")


PROTOCOLS: dict[str, ProtocolInfo] = {p.name: p for p in (
    ProtocolInfo(
        "market",
        "single query: each query ranked against the whole gallery; same id + same camera and "
        "id -1 are junk, distractors (id 0) are wrong matches",
        ("query", "gallery")),
    ProtocolInfo(
        "market_mq",
        "Market-1501 multiple query: each query's feature pooled over the gt_bbox images of the "
        "same identity in the same camera (pooling: avg or max), then ranked like single query",
        ("query", "mq_query", "gallery"), options={"pooling": "avg"}),
    ProtocolInfo(
        "cuhk03_classic",
        "CUHK03 classic single-shot: per query and repeat, the gallery holds one random image of "
        "each identity from another camera; CMC and mAP averaged over `repeats` seeded repeats "
        "(default 10, as torchreid's eval_cuhk03) and over the dataset's classic splits",
        ("query", "gallery"), options={"repeats": 10}, meta=("cuhk03_classic_splits",)),
    ProtocolInfo(
        "cuhk03_multishot",
        "CUHK03 multi-shot: every image of the other camera is in the gallery (Market rules)",
        ("query", "gallery")),
    ProtocolInfo(
        "market500k",
        "Market-1501 + 500k distractors: gallery = gallery split + the distractor stream, "
        "evaluated in chunks (exact, bounded memory); optional sweep over gallery_sizes "
        "(number of distractors added)",
        ("query", "gallery"), options={"gallery_sizes": None, "chunk_size": 20000},
        streams=("distractors",)),
    ProtocolInfo(
        "oxford5k",
        "Oxford5k retrieval mAP: bbox-cropped queries against all images; good+ok are positives, "
        "junk ignored, as the official compute_ap",
        ("query", "gallery"), meta=("oxford_gt",), metrics=("mAP",)),
)}
