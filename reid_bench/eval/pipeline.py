"""``evaluate_cell``: run one evaluation protocol of a spec (``registry.PROTOCOLS``, one module
each in ``eval/protocols/``) on a dataset with an embedding function, returning percent
metrics for the report."""

from __future__ import annotations

from typing import Any

from ..core.registry import PROTOCOLS
from ..data.base import ReidDataset
from ._tensor import check_choice
from .distance import DISTANCES
from .protocols import EvalContext, EvalResult, Protocol
from .protocols._common import Embed
from .ranking import AP_DEFINITIONS

RERANK_PARAMETERS = ("k1", "k2", "lambda_value")


def evaluate_cell(protocol: str, dataset: ReidDataset, embed: Embed, *, distance: str = "euclidean",
                  ap: str = "standard", rerank: dict | None = None, max_rank: int = 50,
                  seed: int = 0, device: str = "cpu", options: dict | None = None) -> EvalResult:
    """Evaluate ``protocol`` (a name in ``PROTOCOLS``) on ``dataset``.

    ``embed(samples)`` returns an N×D float tensor for a list of samples. ``distance`` is one
    of ``DISTANCES``, ``ap`` one of ``AP_DEFINITIONS``, ``rerank`` None or k-reciprocal
    parameters ``{"k1", "k2", "lambda_value"}``; ``options`` are protocol options (see
    ``PROTOCOLS[name].options``). Returns an ``EvalResult`` with percent metrics.
    """
    check_choice("protocol", protocol, tuple(PROTOCOLS))
    check_choice("distance", distance, DISTANCES)
    check_choice("ap", ap, AP_DEFINITIONS)
    proto: Protocol = PROTOCOLS.get(protocol)()
    opts = dict(proto.options)
    for k, v in (options or {}).items():
        if k not in proto.options:
            raise ValueError(f"unknown option {k!r} for protocol {protocol!r}; valid options: "
                             f"{', '.join(proto.options) or '(none)'}")
        opts[k] = v
    if rerank is not None:
        bad = set(rerank) - set(RERANK_PARAMETERS)
        if bad:
            raise ValueError(f"unknown re-ranking parameter(s) {sorted(bad)}; valid: "
                             f"{', '.join(RERANK_PARAMETERS)}")
        rerank = dict(rerank)
    _check_needs(protocol, proto, dataset)
    details: dict[str, Any] = {"protocol": protocol, "protocol_description": proto.description,
                               "ap_definition": ap, "distance": distance, "rerank": rerank,
                               "max_rank": max_rank, "options": opts}
    ctx = EvalContext(protocol, distance, ap, rerank, max_rank, seed, device, opts)
    res = proto.evaluate(dataset, embed, ctx)
    res.details = {**details, **res.details}
    return res


def _check_needs(name: str, proto: Protocol, dataset: ReidDataset) -> None:
    """ValueError naming what ``dataset`` lacks of the splits, streams and meta keys the
    protocol declares."""
    for split in proto.splits:
        if split not in dataset.splits:
            raise ValueError(f"protocol {name!r} needs split {split!r} of dataset "
                             f"{dataset.name!r}, which has: {', '.join(sorted(dataset.splits))}")
    for stream in proto.streams:
        if stream not in dataset.streams:
            raise ValueError(f"protocol {name!r} needs stream {stream!r} of dataset "
                             f"{dataset.name!r}, which has streams: "
                             f"{', '.join(sorted(dataset.streams)) or '(none)'}")
    for key in proto.meta:
        if not dataset.meta.get(key):
            raise ValueError(f"protocol {name!r} needs dataset.meta[{key!r}] (dataset "
                             f"{dataset.name!r})")
