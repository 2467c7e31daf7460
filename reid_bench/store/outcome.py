"""A cell's run as typed parts, in the order the runner produces them (``run/runner.py``):
``Prepared`` (``run/prepare.py``), ``Trained`` (``run/models.py``), ``Result``
(``run/evaluate.py``), and ``CellOutcome``, all of it, which ``cellrow.record`` writes.

``CellOutcome.details`` is the cell record's JSON (``<results>/<paper>/<table>/<cell_id>.json``)
besides its row and metrics: its keys and their order are those of the records written before
these types existed, so records stay byte-comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.base import ReidDataset
from ..data.preprocess import InputPreprocessing
from ..engine.method import Method
from ..spec import Spec
from ..table.plan import Cell


@dataclass(frozen=True)
class Prepared:
    """A cell ready to train and evaluate: its config (``plan.cell_config``) and hash, the
    method with its validated params and recipe, the datasets (checked, file by file), the
    input preprocessing, and the training's cache key and hash."""

    cell: Cell
    config: dict[str, Any]
    config_hash: str
    method: Method
    params: Any
    recipe: Any
    test_set: ReidDataset  # the dataset the column evaluates on
    train_set: ReidDataset  # its training split: the test set's, or the column's train source
    dataset_fingerprint: str  # finished.cell_fingerprint of the two
    synthetic: bool
    # None only in the record of an attempt that failed resolving it (Preparer.prepare_base).
    preprocessing: InputPreprocessing | None
    training_key: dict[str, Any]  # plan.training_key + data fingerprint, switches, weights pins
    training_hash: str
    accel: Any  # engine.accel.Accel the cell trains and evaluates under

    def architecture(self) -> Any:
        """The cell's network (``torch.nn.Module``) as ``method.build`` makes it, with no
        pretrained weights loaded: a trained or stored state replaces every weight, so no
        ImageNet file is needed or downloaded."""
        from ..weights import skip_pretrained

        with skip_pretrained():
            return self.method.build(self.params, self.recipe, self.train_set.num_train_pids)

    def details(self) -> dict[str, Any]:
        """The cell-record entries of this part (after ``config`` and the fingerprint)."""
        return {"synthetic": self.synthetic, "train_hash": self.training_hash,
                "accel": self.accel.as_dict()}


@dataclass(frozen=True)
class Trained:
    """Where a cell's model comes from: the code that trained it, its artefact folder and that
    training's own record, its files' sha256, the pretrained weights it started from and its
    training history."""

    code_fingerprint: str
    artifact: str  # the artefact folder (``trained_artifact`` in the record)
    training: dict[str, Any]  # engine.trained.read of the folder (``trained``)
    files: dict[str, Any]  # the folder's manifest (``trained_files``)
    weights_loaded: list[dict[str, Any]]  # each pretrained file loaded (``weights``)
    history: list[dict[str, Any]]  # epoch and monitoring rows of its metrics.csv
    history_warnings: list[str]
    history_file: str | None = None  # the full metrics.csv, relative to the results folder
    # Reused from the runner's memory (an earlier cell of this run trained it). Only the order
    # of the record's keys differs: ``history_file`` comes before ``history_warnings``, as in
    # the records written before this type existed.
    from_memory: bool = False

    def details(self) -> dict[str, Any]:
        """The cell-record entries of this part."""
        d = {"code_fingerprint": self.code_fingerprint, "trained_artifact": self.artifact,
             "trained": self.training, "trained_files": self.files,
             "weights": self.weights_loaded, "history": self.history}
        tail = {"history_warnings": self.history_warnings}
        file = {} if self.history_file is None else {"history_file": self.history_file}
        return {**d, **file, **tail} if self.from_memory else {**d, **tail, **file}


@dataclass(frozen=True)
class Result:
    """A cell's evaluation: percent metrics, the CMC curve, the protocol's details and how many
    queries were scored and skipped (no valid match)."""

    metrics: dict[str, float]
    cmc: list[float] | None = None  # None for retrieval mAP
    eval_details: dict[str, Any] = field(default_factory=dict)
    num_queries: int | None = None
    skipped_queries: int | None = None


@dataclass(frozen=True)
class CellOutcome:
    """How one attempt of ``cell`` ended: ``status`` (ok, failed, diverged, not_run) and
    ``error``, when it ran, and the parts it got to. A part is None when the attempt ended
    before it (``config`` None: the cell's config could not be resolved)."""

    spec: Spec
    cell: Cell
    status: str
    error: str = ""
    started: float = 0.0
    finished: float = 0.0
    config: dict[str, Any] | None = None
    config_hash: str = ""
    dataset_fingerprint: str | None = None  # known before the data's files are checked
    prepared: Prepared | None = None
    # The code fingerprint of a training that was started but did not finish (``trained``
    # has the finished one's).
    code_fingerprint: str | None = None
    trained: Trained | None = None
    shakedown: dict[str, Any] | None = None  # table.shakedown.summary of a --shakedown cell
    result: Result | None = None
    traceback: str | None = None  # of an unexpected exception

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def details(self) -> dict[str, Any]:
        """The cell record's entries besides ``row`` and ``metrics``, in their written order."""
        d: dict[str, Any] = {}
        if self.config is not None:
            d["config"] = self.config
        if self.dataset_fingerprint is not None:
            d["dataset_fingerprint"] = self.dataset_fingerprint
        if self.prepared is not None:
            d.update(self.prepared.details())
        if self.trained is not None:
            d.update(self.trained.details())
        elif self.code_fingerprint is not None:
            d["code_fingerprint"] = self.code_fingerprint
        if self.shakedown is not None:
            d["shakedown"] = self.shakedown
        if self.result is not None:
            d["cmc"] = self.result.cmc
            d["eval_details"] = self.result.eval_details
        if self.traceback is not None:
            d["traceback"] = self.traceback
        return d
