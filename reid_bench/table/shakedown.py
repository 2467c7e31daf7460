"""The ``--shakedown`` tier: every cell of a real run, with the paper's full recipe (input size,
network width, batch sizes, every training stage), each stage stopped after a few optimisation
steps, on the synthetic stand-in generated at the recipe's input resolution, evaluated on a
small synthetic gallery. It proves shapes, memory, losses, schedules, samplers, stage hand-offs
and evaluation work at the real configuration before a GPU day is spent on it. Its numbers
are not reproductions: the CSV's ``tier`` is ``shakedown`` and the report labels them so.

What this module owns (the runner and ``train_stage`` call it in a few places):

* ``ShakedownOptions`` — steps per stage, ``pretrained="none"`` (random init instead of
  ImageNet weights, for machines without them) and ``max_batch`` (a CPU-only cap on every
  stage's batch size; a P×K sampler keeps P >= 2 identities by lowering K to at most
  ``max_batch // 2``). Both deviations are spelled into the recipe, so they are part of the
  cell's config hash and are recorded in the CSV (``pretrained``, ``max_batch``).
* ``collect``/``step_limit``/``StageProbe`` — the step limit ``train_stage`` obeys and the
  per-stage record it fills: first/last loss, seconds per step (forward + backward +
  optimiser, excluding data loading; CUDA-synchronised), peak memory.
* ``cell_fields`` — the per-cell CSV columns. Peak memory is ``torch.cuda.max_memory_allocated``
  over the cell on CUDA (``peak_mem_kind`` = ``cuda_max_allocated``); on CPU it is the
  process's peak resident set size so far (``cpu_max_rss_process``: an upper bound for the
  cell, since a process's peak RSS cannot be reset).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..core.errors import ReidBenchError
from ..core.strict import Strict
from ..engine.step_probe import begin_cell, collect, summary  # noqa: F401 (re-exported: the runner's API)

# Small synthetic test split: enough for every protocol's query/gallery logic, cheap to embed
# with full-size networks on a CPU.
EVAL_IDS, DISTRACTORS, JUNK = 4, 3, 1
NUM_CAMS = 6  # the synthetic generator's default: one image per camera and identity


class ShakedownOptions(Strict):
    """``reid-bench run --shakedown`` settings."""

    steps: int = Field(2, ge=1)  # optimisation steps per training stage
    pretrained: Literal["spec", "none"] = "spec"  # "none": random init (no ImageNet weights)
    max_batch: int | None = Field(None, ge=1)  # cap on every batch size (CPU only)


def check_device(opts: ShakedownOptions | None, device: str) -> None:
    """Refuse ``max_batch`` on CUDA: a GPU shakedown exists to prove the real batch fits."""
    if opts is not None and opts.max_batch is not None and str(device).startswith("cuda"):
        raise ReidBenchError(
            f"--shakedown-max-batch {opts.max_batch} is for CPU shakedowns only: on {device} the "
            "shakedown must run the spec's real batch sizes to prove they fit in GPU memory. "
            "Drop --shakedown-max-batch, or add --device cpu.")


# ---------------------------------------------------------------- recipe and data
def _walk(model: BaseModel, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield path + (name,), value
            yield from _walk(value, path + (name,))


def _set(tree: dict, path: tuple[str, ...], key: str, value: Any) -> None:
    for p in path:
        tree = tree.setdefault(p, {})
    tree[key] = value


def adjust_recipe(method: str, values: dict, opts: ShakedownOptions) -> dict:
    """``values`` (a row's resolved recipe) with ``opts``' deviations: every backbone's
    ``pretrained`` set to "none", every optimiser stage's ``batch_size`` capped at
    ``max_batch`` (P×K samplers: K lowered so P >= 2). Unchanged without those options."""
    from ..core.registry import METHODS
    from ..engine.recipe import BackboneRecipe, OptimRecipe
    from ..spec import deep_merge

    if opts.pretrained == "spec" and opts.max_batch is None:
        return values
    recipe = METHODS.get(method).Recipe.model_validate(values)
    over: dict = {}
    parts = dict(_walk(recipe))
    for path, part in parts.items():
        if isinstance(part, BackboneRecipe) and opts.pretrained == "none":
            _set(over, path, "pretrained", "none")
        if isinstance(part, OptimRecipe) and opts.max_batch is not None:
            batch = min(part.batch_size, opts.max_batch)
            sampler = getattr(recipe, "sampler", None)
            k = getattr(sampler, "k", None)
            if path == ("train",) and isinstance(k, int):  # P×K batch (Deep-Person)
                k2 = min(k, max(1, batch // 2))
                batch = max(k2, batch // k2 * k2)
                _set(over, ("sampler",), "k", k2)
            _set(over, path, "batch_size", batch)
    out = deep_merge(values, over)
    METHODS.get(method).Recipe.model_validate(out)  # the adjusted recipe must stay valid
    return out


def dataset_options(method: str, values: dict) -> dict:
    """Options of the synthetic stand-in for a shakedown of a row with recipe ``values``:
    images at the recipe's input resolution (its ``resize`` when set, else height×width),
    enough training identities for the largest batch (pairs count twice), a small test
    split."""
    from ..core.registry import METHODS

    recipe = METHODS.get(method).Recipe.model_validate(values)
    inp = getattr(recipe, "input", None)
    h, w = 128, 64
    if inp is not None:
        # Deep-Person's input has no resize (its pipeline starts at height×width).
        resize = getattr(inp, "resize", None)
        h, w = resize if resize is not None else (inp.height, inp.width)
    from ..engine.recipe import OptimRecipe

    biggest = max([p.batch_size for _, p in _walk(recipe) if isinstance(p, OptimRecipe)] or [1])
    train_ids = max(32, math.ceil(2 * biggest / NUM_CAMS) + 1)
    return {"num_train_ids": train_ids, "num_test_ids": EVAL_IDS, "images_per_cam": 1,
            "mq_per_query": 1, "num_distractors": DISTRACTORS, "num_junk": JUNK,
            "height": max(32, int(h)), "width": max(16, int(w))}


def _pretrained(values: dict) -> str | None:
    """The backbone weights a recipe starts from (first ``pretrained`` key found)."""
    for k, v in values.items():
        if k == "pretrained" and isinstance(v, str):
            return v
        if isinstance(v, dict):
            found = _pretrained(v)
            if found is not None:
                return found
    return None


def cell_fields(details: dict, config: dict, opts: ShakedownOptions | None) -> dict[str, Any]:
    """The CSV columns this module adds to every results row: precision and channels_last of
    the training (from ``details["accel"]``), the backbone weights, and, for shakedown cells,
    the step limit, batch cap, seconds per step, first/last loss and peak memory."""
    acc = details.get("accel") or {}
    shake = details.get("shakedown") or {}
    return {
        "precision": acc.get("precision"),
        "channels_last": acc.get("channels_last"),
        "pretrained": _pretrained(config.get("recipe") or {}),
        "shakedown_steps": opts.steps if opts is not None else None,
        "max_batch": opts.max_batch if opts is not None else None,
        "step_s": shake.get("step_s"),
        "img_per_s": shake.get("img_per_s"),
        "first_loss": shake.get("first_loss"),
        "last_loss": shake.get("last_loss"),
        "peak_mem_mb": shake.get("peak_mem_mb"),
        "peak_mem_kind": shake.get("peak_mem_kind") or None,
    }
