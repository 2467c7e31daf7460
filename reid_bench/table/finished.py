"""When a cell counts as finished: the one rule the runner (both of its skip checks), the
launchers' pending-cell selection and ``status`` apply.

A results row finishes its cell only for the config AND the data it was computed on: status ok,
the same ``config_hash`` (spec, recipe, options) and the same ``dataset_fingerprint`` (the file
list with sizes, ``data.base.fingerprint_samples``). A row computed on another data root, or on
the same root after files were deleted, replaced or truncated, is not finished for this data:
the cell re-runs instead of keeping the other data's numbers.

``data_fingerprint`` is what ``cell_fingerprint`` makes of the loaded datasets;
``DataFingerprints`` computes it for callers without a ``Runner`` (status, launchers), loading
each dataset once per data root.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.hashing import stable_hash

log = logging.getLogger(__name__)


def is_finished(row: Mapping[str, Any] | None, config_hash: str | None,
                data_fingerprint: str | None) -> bool:
    """Whether results ``row`` (a CSV row as a mapping, or None when the cell has none)
    finishes its cell for ``config_hash`` and ``data_fingerprint`` (``cell_fingerprint`` of
    the data the cell would run on now). False whenever either is unknown (None): a cell that
    cannot be checked against its data is never skipped."""
    if row is None or config_hash is None or data_fingerprint is None:
        return False
    return (row.get("status") == "ok" and _text(row.get("config_hash")) == str(config_hash)
            and _text(row.get("dataset_fingerprint")) == str(data_fingerprint))


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def cell_fingerprint(eval_fingerprint: str, train_fingerprint: str | None = None) -> str:
    """The ``dataset_fingerprint`` a cell records: its evaluation dataset's fingerprint, combined
    with its training dataset's when the column trains on another dataset (either changing
    changes the numbers)."""
    if not train_fingerprint or train_fingerprint == eval_fingerprint:
        return eval_fingerprint
    return stable_hash({"eval": eval_fingerprint, "train": train_fingerprint})[:16]


class DataFingerprints:
    """``cell_fingerprint`` of a cell's config (``plan.cell_config``), each dataset loaded once
    (per name and loader options) from ``data_root`` by ``load(name, options)`` (default: the
    registered loader; the runner and the launchers pass their checked load, so a dataset that
    fails the run's checks has no fingerprint there); None when a dataset does not load (the
    reason is in ``problems``)."""

    def __init__(self, data_root: str | Path | None = None,
                 load: Callable[[str, dict], Any] | None = None):
        from ..data.base import resolve_data_root

        self.root = resolve_data_root(data_root)
        self._load = load
        self._fp: dict[str, str | None] = {}
        self.problems: dict[str, str] = {}  # dataset label → why it did not load

    def dataset(self, name: str, options: Mapping[str, Any]) -> str | None:
        """The fingerprint of dataset ``name`` with loader ``options``, or None."""
        key = stable_hash([name, dict(options)])
        if key not in self._fp:
            from ..core.errors import ReidBenchError
            from ..data.base import load_dataset

            try:
                ds = (self._load(name, dict(options)) if self._load is not None
                      else load_dataset(name, self.root, **dict(options)))
                self._fp[key] = ds.fingerprint
            except (ReidBenchError, OSError, ValueError) as exc:
                self._fp[key] = None
                self.problems[f"{name} {dict(options) or ''}".strip()] = \
                    str(exc).splitlines()[0]
        return self._fp[key]

    def of_config(self, config: Mapping[str, Any]) -> str | None:
        """The data fingerprint of a cell with ``config``, or None when its data does not
        load."""
        ev = self.dataset(config["dataset"]["name"], config["dataset"]["options"])
        tsrc = config.get("train_dataset")
        tr = self.dataset(tsrc["name"], tsrc["options"]) if tsrc else None
        if ev is None or (tsrc and tr is None):
            return None
        return cell_fingerprint(ev, tr)
