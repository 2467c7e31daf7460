"""The columns of a results CSV: the cell key (``KEY``), the tiers and statuses, every column in
file order (``COLUMNS``, documented in ``results/README.md``), and how each is read back (text,
boolean, or migrated from files of older versions). ``store/results.py`` reads and writes the
file by them.
"""

from __future__ import annotations

from ..core.metrics import METRICS

STATUSES = ("ok", "failed", "diverged", "not_run")
# The tier of a run: the paper's recipe on the real data ("full"), the shrunk recipe on the
# synthetic stand-in ("smoke"), the full recipe for a few steps ("shakedown"), the shrunk recipe
# on the real data ("smoke_recipe", --smoke-recipe).
TIERS = ("full", "smoke", "shakedown", "smoke_recipe")
# Tiers that train with the spec's shrunk ``smoke:`` recipe.
SHRUNK_TIERS = ("smoke", "smoke_recipe")
# A cell's identity. ``variant`` is "" for the canonical spec as committed; anything that makes
# the numbers deviate from it (a spec copy, --set overrides, an assumption variant, a subset)
# is spelled into it, so such results never land in the canonical cells.
KEY = ["row", "dataset", "split", "seed", "tier", "variant"]
METRIC_COLUMNS = list(METRICS)
COLUMNS = [
    "paper", "table", "row", "dataset", "split", "seed", "tier", "variant", "smoke", "status",
    "error",
    *METRIC_COLUMNS, "extra_metrics", "num_queries", "skipped_queries",
    "method", "protocol", "ap", "distance", "rerank", "dataset_name", "synthetic",
    "git_commit", "git_dirty", "spec_hash", "config_hash", "train_hash", "dataset_fingerprint",
    "device", "device_name", "hostname", "torch", "torchvision", "timm", "numpy", "python",
    "started_at", "finished_at", "wall_s", "cell_id",
    "accel",  # speed switches of the training (reid_bench.engine.accel.Accel.tag), e.g. bf16+cl+cudnn
    "overrides",  # --set recipe overrides, JSON {dotted key: value} (reid_bench.table.overrides)
    "row_digest",  # digest of the row's other fields: a hand edit shows (reid_bench.store.row_digest)
    # Numerics of the training (reid_bench.engine.accel): fp32 | tf32 | bf16 | fp16 (the papers': fp32),
    # channels_last layout, backbone weights the recipe started from (imagenet | none | file).
    "precision", "channels_last", "pretrained",
    # --shakedown cells (reid_bench.table.shakedown): steps per stage, batch cap (CPU), seconds per
    # step, first/last training loss, peak memory in MiB and what was measured.
    "shakedown_steps", "max_batch", "step_s", "img_per_s", "first_loss", "last_loss",
    "peak_mem_mb",
    "peak_mem_kind",
    "subset",  # True: --subset, a deliberate subset of the real dataset (counts not checked)
    # Provenance of the training that produced the (possibly cached) model: reid_bench.engine.trained
    "trained_accel", "trained_world_size", "trained_commit", "trained_at", "trained_device",
    # pretrained weights the model started from: "<backbone>: <library tag | file> (<how found>)
    # <path>", and the file's sha256 ("; "-joined when a method loads several files)
    "weights_source", "weights_sha256",
]
# Key columns a file written by an older version may lack: filled in by ``results.read_results``.
MIGRATED_KEY = ("split", "tier", "variant")
# Flag columns, read back as bool (an empty field is False).
BOOL_COLUMNS = ("smoke", "synthetic", "git_dirty", "subset", "channels_last")
# Columns read as text whatever they hold (ids, hashes, names: "NA" or "001" stay as written).
TEXT_COLUMNS = ("paper", "table", "row", "dataset", "tier", "variant", "status", "error",
         "extra_metrics", "method",
         "git_commit", "spec_hash", "config_hash", "train_hash", "dataset_fingerprint", "cell_id",
         "overrides", "row_digest", "trained_accel", "trained_commit", "trained_at",
         "trained_device", "weights_source", "weights_sha256")
