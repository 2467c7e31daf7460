"""A cell's trained model: trained by its method's ``fit`` under the run's settings, or loaded
from the trained-model cache (``trained.get_or_train``) when the same training was done before,
with its provenance (``store.outcome.Trained``: code fingerprint, artefact folder, that
training's own record, the pretrained weights it started from, its history)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import history
from ..core.hashing import stable_hash
from ..engine import trained as trained_prov
from ..engine.accel import use as use_accel
from ..engine.artifacts import ArtifactCache, read_manifest
from ..engine.checkpoint_identity import checkpoint_identity, use_checkpoint_identity
from ..engine.distributed import is_main
from ..engine.method import CellContext
from ..engine.train import LoopSettings, use_loop_settings
from ..store.outcome import Prepared, Trained

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    """The run's side of a training: where it runs and how (the cell brings the rest)."""

    device: torch.device
    accel: Any  # accel.Accel, resolved for the device
    cache: ArtifactCache  # the run's artefact cache (salted here per method code and switches)
    num_workers: int
    checkpoint_every: int
    deterministic: bool
    loop: LoopSettings  # checkpoint timer and progress bar of every train_stage
    # The training history (reid_bench.history): a ``steps`` row every this many steps (0:
    # epoch rows only), the monitoring evaluation (history.Monitor or None) and the folder of
    # this cell's TensorBoard event files (None: none).
    every_steps: int = 0
    monitor: Any = None
    tensorboard: Path | None = None


@dataclass
class FitNotes:
    """What a training attempt learned before it ended, kept when it raises (the cell's record
    of a failed or diverged training has them): the code fingerprint of the training started,
    and the shakedown measurements (``table.shakedown.summary``) of its stages."""

    code_fingerprint: str | None = None
    shakedown: dict[str, Any] | None = None


def fit_or_load(prepared: Prepared, *, work: Path, run: FitSettings,
                notes: FitNotes) -> tuple[torch.nn.Module, Trained]:
    """The model of ``prepared``'s method (params, recipe) trained on its training set with
    the cell's seed, keyed by ``prepared.training_key`` in the cache: ``method.fit``
    (checkpoints under ``work``) when the cache lacks it, else rebuilt and loaded. Returns it
    on ``run.device`` with its provenance (``Trained``; its ``history``: the model's epoch and
    monitoring rows of its ``metrics.csv``); ``notes.code_fingerprint`` is set first."""
    method, params, recipe = prepared.method, prepared.params, prepared.recipe
    ds, train_key = prepared.train_set, prepared.training_key
    work.mkdir(parents=True, exist_ok=True)
    code = method.code_fingerprint()
    # Stages cached inside fit (FMN stage 1, LEDF verification nets) were trained under the
    # same switches and world size as the model, from the same --weights files: their keys
    # include those too (the files' sha256, plan.weights_key).
    weights_sha256 = train_key.get("weights")
    cache = run.cache.salted(f"{code}+{stable_hash(train_key.get('accel'))[:12]}"
                             + (f"+weights:{stable_hash(weights_sha256)}" if weights_sha256
                                else ""))
    notes.code_fingerprint = code
    ctx = CellContext(dataset=ds, device=run.device, seed=prepared.cell.seed, cache=cache,
                      work_dir=work, num_workers=run.num_workers,
                      checkpoint_every=run.checkpoint_every, deterministic=run.deterministic,
                      preprocessing=prepared.preprocessing)
    from ..weights import recording

    identity = checkpoint_identity(prepared.training_hash, cache.salt)
    loads: list = []
    # The history is written as training runs into the work folder (under the identity, so a
    # crashed run of another config is never continued), then published with the model.
    # Only the main rank of a DDP job writes it (the other ranks keep theirs in memory).
    main = is_main()
    hist = history.History(work / f"metrics-{stable_hash(identity)[:12]}.csv" if main else None,
                           every_steps=run.every_steps, monitor=run.monitor if main else None,
                           tensorboard=run.tensorboard if main else None)

    def train() -> torch.nn.Module:
        # The run's speed switches (and checkpoint timer, progress bar) apply to every
        # train_stage inside fit; its checkpoints resume only this exact training
        # (engine/checkpoint_identity.py).
        with use_accel(run.accel), use_loop_settings(run.loop), \
                use_checkpoint_identity(identity), recording() as rec, history.use(hist):
            model = method.fit(params, recipe, ctx)
        loads[:] = rec
        return model

    def build() -> torch.nn.Module:
        return prepared.architecture()  # a cached model evaluates offline

    def publish(model: torch.nn.Module, tmp: Path) -> None:
        (tmp / "weights.json").write_text(json.dumps([w.as_dict() for w in loads], indent=1))
        history.write_rows(tmp / history.FILE, hist.rows)
        trained_prov.write(tmp, run.accel, run.device, code)

    model, folder, fresh = trained_prov.get_or_train(cache, "trained", train_key, train,
                                                     build, publish=publish)
    if not fresh:
        log.info("  reusing trained model %s (same training config; files match their "
                 "sha256)", folder.name)
    wfile = folder / "weights.json"
    rows = trained_prov.read_history(folder)
    trained = Trained(
        code_fingerprint=code, artifact=str(folder),
        training=trained_prov.read(folder),  # this model's own training
        files=read_manifest(folder),  # sha256 of its files (verify.py)
        weights_loaded=json.loads(wfile.read_text()) if wfile.is_file() else [],
        # The cell JSON keeps the epoch and monitoring rows (bounded by the epochs); the rows
        # every N steps stay in the artefact's metrics.csv.
        history=[r for r in rows if r["kind"] != "steps"],
        history_warnings=history.plateaued(rows))
    for why in trained.history_warnings if not fresh else ():  # fresh: logged as it trained
        log.warning("%s", why)
    if not fresh and run.tensorboard is not None and not any(run.tensorboard.rglob("events.*")):
        from ..history.tensorboard import write_rows

        write_rows(rows, run.tensorboard)  # a cached model's saved history
    return model.to(run.device), trained
