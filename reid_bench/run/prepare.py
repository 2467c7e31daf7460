"""Step 1 of a cell (``run/runner.py``): ``Preparer.prepare(cell, config, config_hash)`` →
``store.outcome.Prepared``: the row's method with its validated params and recipe, the
datasets (loaded once per run, every file checked once per dataset), the input preprocessing,
and the training's cache key. It seeds the RNGs for the cell, as the last thing before the
training key, so every rank of a distributed job and every re-evaluation starts alike."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.hashing import stable_hash
from ..core.registry import METHODS
from ..data.base import ReidDataset
from ..data.check import BadFilesError, check_files, load_verified
from ..data.preprocess import preprocess_for
from ..engine import trained as trained_prov
from ..engine.method import Method
from ..engine.seeding import seed_everything
from ..store.outcome import Prepared
from ..table.finished import cell_fingerprint
from ..table.plan import Cell, training_key


class BadCellFiles(BadFilesError):
    """A dataset of the cell failed the file check: the cell failed (its data is broken, not
    missing). ``dataset_fingerprint``: the cell's data, recorded with the failure."""

    def __init__(self, message: str, dataset_fingerprint: str):
        super().__init__(message)
        self.dataset_fingerprint = dataset_fingerprint


class Preparer:
    """Prepares the cells of one run: ``opts`` (the run's ``RunOptions``: subset, deterministic,
    shakedown), the datasets under ``data_root``, ``accel`` (the resolved speed switches)."""

    def __init__(self, opts: Any, data_root: Path, accel: Any):
        self.opts, self.data_root, self.accel = opts, data_root, accel
        self._datasets: dict[str, ReidDataset] = {}
        self._files_checked: dict[str, str] = {}  # dataset fingerprint → problem ("" = ok)

    def load(self, name: str, options: dict) -> ReidDataset:
        """Dataset ``name`` with loader ``options``, loaded (and its layout and counts checked)
        once per run."""
        key = stable_hash([name, options])
        if key not in self._datasets:
            # Fail in seconds on a half-extracted or relabelled dataset, not after an epoch.
            # A deliberate --subset is checked for layout (the loader) and images, not counts.
            self._datasets[key] = load_verified(name, self.data_root, options,
                                                subset=self.opts.subset)
        return self._datasets[key]

    def check_files(self, ds: ReidDataset, name: str, options: dict) -> None:
        """``data.check.check_files`` once per dataset (by fingerprint); a bad dataset raises
        ``BadFilesError`` again for every cell that uses it."""
        if ds.fingerprint not in self._files_checked:
            try:
                check_files(ds, name, options)
                self._files_checked[ds.fingerprint] = ""
            except BadFilesError as exc:
                self._files_checked[ds.fingerprint] = str(exc)
        if self._files_checked[ds.fingerprint]:
            raise BadFilesError(self._files_checked[ds.fingerprint])

    def prepare(self, cell: Cell, config: dict[str, Any], config_hash: str) -> Prepared:
        """``cell`` with its ``config`` (``plan.cell_config``, hash ``config_hash``) ready to
        train: ``with_preprocessing(prepare_base(...))``. Raises ``RegistryError`` (unknown
        method), ``DatasetError`` (no data), ``BadCellFiles`` (a broken file) or the params'
        and recipe's validation errors."""
        return self.with_preprocessing(self.prepare_base(cell, config, config_hash))

    def with_preprocessing(self, prepared: Prepared) -> Prepared:
        """``prepared`` with its input preprocessing resolved: the backbone's weights own it
        (reid_bench.weights), and ``normalize: mean_image`` decodes training images. Apart from
        ``prepare_base`` so that an attempt failing here still records what was prepared."""
        return replace(prepared, preprocessing=preprocess_for(
            getattr(prepared.recipe, "input", None),
            prepared.method.backbone_name(prepared.params), prepared.train_set))

    def prepare_base(self, cell: Cell, config: dict[str, Any], config_hash: str) -> Prepared:
        """``prepare`` without the input preprocessing (``preprocessing`` None)."""
        method: Method = METHODS.get(cell.row.method)()
        params = method.Params.model_validate(cell.row.params)
        recipe = method.Recipe.model_validate(config["recipe"])
        test_src, train_src = config["dataset"], config["train_dataset"]
        test_set = self.load(test_src["name"], test_src["options"])
        train_set = self.load(train_src["name"], train_src["options"]) if train_src else test_set
        fingerprint = cell_fingerprint(test_set.fingerprint,
                                       train_set.fingerprint if train_src else None)
        # Every listed file, cheaply, before the first step: a truncated JPEG fails the cell in
        # seconds (naming the file), not after epochs of training.
        try:
            self.check_files(test_set, test_src["name"], test_src["options"])
            if train_src:
                self.check_files(train_set, train_src["name"], train_src["options"])
        except BadFilesError as exc:
            raise BadCellFiles(str(exc), fingerprint) from None
        seed_everything(cell.seed, self.opts.deterministic)
        key = {**training_key(cell, config, method, params),
               "fingerprint": train_set.fingerprint,
               # precision/speed switches, world size, global batch (reid_bench.engine.trained)
               **trained_prov.key_extras(self.accel, config["recipe"], self.opts.shakedown),
               # the sha256 of --weights files replacing the ImageNet ones (plan.weights_key)
               **({"weights": config["weights"]} if "weights" in config else {})}
        return Prepared(cell=cell, config=config, config_hash=config_hash, method=method,
                        params=params, recipe=recipe, test_set=test_set, train_set=train_set,
                        dataset_fingerprint=fingerprint,
                        synthetic=test_set.synthetic or train_set.synthetic,
                        preprocessing=None, training_key=key,
                        training_hash=stable_hash(key), accel=self.accel)
