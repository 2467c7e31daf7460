"""A cell's results row: its key, outcome, metrics and provenance, as one ``results.COLUMNS``
dict (what ``results.upsert_row`` writes and ``results/README.md`` documents), built from the
cell's typed ``outcome.CellOutcome``."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from ..core.provenance import provenance
from ..engine import trained as trained_prov
from ..table import shakedown
from ..table.overrides import overrides_json
from ..table.workdirs import attempt_path
from . import results
from .outcome import CellOutcome

log = logging.getLogger(__name__)


def cell_row(outcome: CellOutcome, opts: Any, device: Any,
             details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The results row of ``outcome`` (a cell's attempt) under run options ``opts`` (the run's
    ``RunOptions``: its ``--set`` overrides and shakedown settings) on ``device``;
    ``details``: ``outcome.details()`` when the caller has it."""
    spec, cell, result = outcome.spec, outcome.cell, outcome.result
    config = outcome.config or {}
    details = outcome.details() if details is None else details
    col = spec.datasets[cell.dataset]
    ev = config.get("eval", {})
    metrics = result.metrics if result is not None else {}
    extra = {k: v for k, v in metrics.items() if k not in results.METRIC_COLUMNS}
    started, finished = outcome.started, outcome.finished
    return {
        "paper": spec.paper.id, "table": spec.table.id, "row": cell.row.name,
        "dataset": cell.dataset, "split": cell.split, "seed": cell.seed,
        "tier": cell.tier, "variant": cell.variant, "smoke": cell.smoke,
        "status": outcome.status,
        "error": outcome.error or None,
        **{m: metrics.get(m) for m in results.METRIC_COLUMNS},
        "extra_metrics": _json(extra) if extra else None,
        "num_queries": result.num_queries if result is not None else None,
        "skipped_queries": result.skipped_queries if result is not None else None,
        "method": cell.row.method, "protocol": ev.get("protocol", col.eval.protocol),
        "ap": ev.get("ap", col.eval.ap), "distance": ev.get("distance", col.eval.distance),
        "rerank": _json(ev["rerank"]) if ev.get("rerank") else None,
        "dataset_name": config.get("dataset", {}).get("name", col.name),
        "synthetic": bool(details.get("synthetic", cell.smoke)),
        "spec_hash": spec.spec_hash, "config_hash": outcome.config_hash,
        "train_hash": details.get("train_hash"),
        "dataset_fingerprint": details.get("dataset_fingerprint"),
        **provenance(device),
        "started_at": _iso(started), "finished_at": _iso(finished),
        "wall_s": round(finished - started, 2), "cell_id": cell.id,
        "accel": (details.get("accel") or {}).get("tag"),
        "overrides": overrides_json(opts.overrides),
        **shakedown.cell_fields(details, config, opts.shakedown),
        "subset": cell.subset,
        **trained_prov.csv_columns(details.get("trained") or {}),
        **_weights_columns(details.get("weights")),
    }


def record(outcome: CellOutcome, opts: Any, device: Any) -> dict[str, Any]:
    """Write ``outcome`` (arguments as for ``cell_row``): its details JSON
    ``<results>/<paper>/<table>/<cell_id>.json`` and its row in the table's CSV.

    A failed attempt (any status but ok) never replaces an ok row of the same cell, not even
    under ``--force``: the ok row and its JSON stay, and the attempt goes to
    ``<cell_id>.attempt.json`` beside it (``status`` shows it; ``attempt_path``). An ok row
    removes an earlier attempt file. Returns the row (also when it was not written)."""
    spec, cell = outcome.spec, outcome.cell
    details = outcome.details()
    row = cell_row(outcome, opts, device, details)
    cells = results.cell_dir(opts.results_dir, spec.paper.id, spec.table.id)
    metrics = outcome.result.metrics if outcome.result is not None else {}
    payload = {"row": row, **details, "metrics": metrics}
    csv = results.table_csv(opts.results_dir, spec.paper.id, spec.table.id)
    if outcome.ok:
        results.write_cell_json(results.cell_file(cells, f"{cell.id}.json"), payload)
        results.upsert_row(csv, row)
        attempt_path(cells, cell.id).unlink(missing_ok=True)
        return row
    # The attempt's details first: a crash in between leaves the old rows as they were.
    results.write_cell_json(attempt_path(cells, cell.id), payload)
    if results.upsert_row(csv, row, keep_ok=True):
        results.write_cell_json(results.cell_file(cells, f"{cell.id}.json"), payload)
        attempt_path(cells, cell.id).unlink(missing_ok=True)
    else:
        log.warning("%s: this attempt ended %s; the cell's earlier ok row is kept (the attempt is "
                    "recorded in %s)", cell.id, outcome.status, attempt_path(cells, cell.id))
    return row


def _weights_columns(loads: list[dict] | None) -> dict[str, str | None]:
    """CSV provenance of the pretrained weights a cell's model started from (each distinct
    file once; several when a method loads more than one backbone)."""
    seen = list({(w["source"], w["sha256"]): w for w in loads or []}.values())
    return {"weights_source": "; ".join(w["source"] for w in seen) or None,
            "weights_sha256": "; ".join(w["sha256"] for w in seen) or None}


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")
