"""Trained models in the artefact cache: getting or training one for a key (``get_or_train``,
the one place that trains-or-loads a state_dict: the runner's whole model, FMN's stage-1 GRN,
LEDF's verification networks), what a model's key holds beyond the recipe, and the provenance
of its own training.

Key: the resolved speed switches (precision/autocast dtype, channels_last, compile, cudnn
autotuning: ``Accel.as_dict``), the data-parallel world size, and the effective (global) batch
size of every training stage. A model trained in fp32 on one GPU is therefore never reused for
a bf16 run or a 4-GPU run, whose numbers may differ.

Provenance: ``training.json`` in the artefact folder records the commit, library versions,
device, switches, world size and time of the training that produced it. When a cached model is
reused, the results row reports *these* (``trained_*`` columns), not the current run's.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import history
from ..core import atomic
from ..core.errors import ResultsError
from .artifacts import ArtifactCache

FILE = "training.json"
log = logging.getLogger(__name__)


def get_or_train(cache: ArtifactCache, kind: str, key: dict, train: Callable[[], nn.Module],
                 build: Callable[[], nn.Module], *, file: str = "model.pt",
                 publish: Callable[[nn.Module, Path], None] | None = None,
                 ) -> tuple[nn.Module, Path, bool]:
    """The model of artefact (``kind``, ``key``) in ``cache``: trained by ``train()`` and its
    state_dict saved as ``file`` when the cache lacks it (``publish(model, folder)`` may add
    files before the artefact is published atomically), else ``build()`` (the untrained
    architecture) with the cached state loaded on the CPU. Returns ``(model, artefact folder,
    whether it was trained now)``; a model loaded from the cache is left on the CPU."""
    trained: dict[str, nn.Module] = {}
    hist = history.current()  # the enclosing training's, when this is one of its stages

    def make(tmp: Path) -> None:
        mark = hist.mark() if hist is not None else 0
        model = train()
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        atomic.write_bytes(tmp / file, buf.getvalue())  # a full disk: DiskFullError naming it
        if hist is not None:  # this stage's rows go with its artefact
            history.write_rows(tmp / history.FILE, hist.rows_of(hist.stages_since(mark)))
        if publish is not None:
            publish(model, tmp)
        trained["model"] = model

    folder = cache.get_or_create(kind, key, make)
    if "model" in trained:
        return trained["model"], folder, True
    if hist is not None:  # a cached stage: its history joins the training that uses it
        hist.import_rows(read_history(folder))
    model = build()
    model.load_state_dict(torch.load(folder / file, map_location="cpu", weights_only=True))
    return model, folder, False


def read_history(folder: Path) -> list[dict[str, Any]]:
    """The training history (``metrics.csv``) saved with the artefact in ``folder``; [] for an
    artefact without one (trained before histories were kept) or an unreadable one."""
    try:
        return history.read_rows(Path(folder) / history.FILE)
    except ResultsError as exc:
        log.warning("ignoring the training history: %s", exc)
        return []


def _batch_sizes(recipe: Any, path: str = "") -> dict[str, int]:
    """Every ``batch_size`` in a recipe dict, by its dotted path."""
    out: dict[str, int] = {}
    if isinstance(recipe, dict):
        for k, v in recipe.items():
            p = f"{path}.{k}" if path else str(k)
            if k == "batch_size" and isinstance(v, int):
                out[p] = v
            else:
                out.update(_batch_sizes(v, p))
    elif isinstance(recipe, list):
        for i, v in enumerate(recipe):
            out.update(_batch_sizes(v, f"{path}[{i}]"))
    return out


def effective_batch(recipe: dict, max_batch: int | None = None) -> dict[str, int]:
    """The global batch of each stage: the recipe's batch sizes (the global batch is split
    across ranks, never multiplied by them), capped by ``max_batch`` when given."""
    sizes = _batch_sizes(recipe)
    if max_batch:
        sizes = {k: min(v, int(max_batch)) for k, v in sizes.items()}
    return sizes


def key_extras(accel: Any, recipe: dict, opts: Any) -> dict[str, Any]:
    """The entries ``run.prepare`` adds to a training's cache key: switches (with world size) and
    effective batch. ``accel``: the resolved ``Accel``; ``opts``: the run's ``ShakedownOptions``
    or None (its ``max_batch`` caps the batch; a no-op on a recipe ``shakedown.adjust_recipe``
    already capped)."""
    d = accel.as_dict()
    return {"accel": {k: v for k, v in d.items() if k != "tag"},
            "world_size": d.get("world_size", 1),
            "effective_batch": effective_batch(recipe, getattr(opts, "max_batch", None))}


def write(folder: Path, accel: Any, device: Any, code_fingerprint: str) -> dict[str, Any]:
    """Write (and return) the provenance of the training being built into ``folder``."""
    from ..core.provenance import provenance

    d = accel.as_dict()
    prov = provenance(device)
    rec = {"trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "git_commit": prov["git_commit"], "git_dirty": prov["git_dirty"],
           "device": prov["device"], "device_name": prov["device_name"],
           "hostname": prov["hostname"],
           "versions": {k: prov[k] for k in ("torch", "torchvision", "timm", "numpy", "python")},
           "accel": d, "accel_tag": d.get("tag"), "world_size": d.get("world_size", 1),
           "code_fingerprint": code_fingerprint}
    (Path(folder) / FILE).write_text(json.dumps(rec, indent=1, sort_keys=True, default=str))
    return rec


def read(folder: Path) -> dict[str, Any]:
    """The provenance stored in an artefact folder ({} for artefacts from before it was
    recorded)."""
    try:
        return json.loads((Path(folder) / FILE).read_text())
    except (OSError, ValueError):
        return {}


def csv_columns(rec: dict[str, Any]) -> dict[str, Any]:
    """The ``trained_*`` results columns of a training's provenance."""
    return {"trained_accel": rec.get("accel_tag"), "trained_world_size": rec.get("world_size"),
            "trained_commit": rec.get("git_commit"), "trained_at": rec.get("trained_at"),
            "trained_device": rec.get("device_name")}
