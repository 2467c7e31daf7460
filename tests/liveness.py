"""What a method does with a recipe, observed without training: the liveness tests
(test_recipe_liveness, test_alternatives_live) perturb one recipe value and compare.

``observe`` runs the method's own ``fit`` on a tiny in-memory dataset with three seams
replaced in every ``reid_bench.models`` module: ``train_stage`` records what a stage would train
(the optimiser's parameter groups and hyperparameters, the lr schedule, gradient clipping, the
loader's batch size, sampler and transform, the loss of the step on the first batch) and
returns at once; ``get_or_train`` trains (records) instead of reading a cache; and
``build_backbone`` records its arguments (a ``pretrained`` value other than "none" is recorded
and then built from random init: no weight file is read). After ``fit`` it records the test
transform (``Method.test_input``) and the test descriptor of a fixed image batch.

Two observations differ iff a recipe value changed something the method builds, trains with
or evaluates with.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ValidationError

from reid_bench.core.hashing import stable_hash
from reid_bench.core.registry import METHODS
from reid_bench.data.base import ReidDataset, Sample
from reid_bench.data.preprocess import preprocess_for
from reid_bench.data.transforms import build_transform
from reid_bench.engine.method import CellContext
from reid_bench.engine.recipe import recipe_leaves
from reid_bench.engine.train import _set_epoch, build_optimizer

# ---------------------------------------------------------------------------------- dataset


def tiny_dataset(root: Path, ids: int = 10, cams: int = 2, per_cam: int = 2,
                 size: tuple[int, int] = (40, 80)) -> ReidDataset:
    """``ids`` training identities × ``cams`` × ``per_cam`` random-noise PNGs of ``size``
    (w, h) — not the recipes' 64×32, so every resize and crop step matters — plus 2 query and
    4 gallery images of two other identities."""
    rng = np.random.default_rng(0)
    w, h = size

    def img(name: str, pid: int, cam: int) -> Sample:
        path = root / f"{name}.png"
        if not path.is_file():
            root.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        return Sample(str(path), pid, cam)

    train = [img(f"t{p}_{c}_{i}", p + 1, c) for p in range(ids) for c in range(cams)
             for i in range(per_cam)]
    query = [img(f"q{p}", 100 + p, 0) for p in range(2)]
    gallery = [img(f"g{p}_{i}", 100 + p, 1) for p in range(2) for i in range(2)]
    return ReidDataset("tiny", root, {"train": train, "query": query, "gallery": gallery},
                       fingerprint="tiny-liveness")


# ------------------------------------------------------------------------------ tiny recipes

#: Per method: recipe values that make a smoke-size network (random init, quarter width,
#: 64×32 images, batches of 8) on top of the Recipe's defaults. Optimiser stages get
#: ``batch_size: 8`` automatically (``base_recipe``).
TINY: dict[str, dict] = {
    "ide": {},
    "lgeu": {},
    "verif_identif": {},
    "fmn": {},
    "ledf": {"region": {"height": 32, "width": 32}, "id_input": {"height": 32, "width": 32}},
    "deep_person": {"sampler": {"k": 2}, "arch": {"lstm_hidden": 16, "global_dim": 32}},
}

#: Params per method: the rows' defaults, except LGEU's K = 4 parts, which need at least four
#: rows in the last map (a 64×32 input gives two).
PARAMS: dict[str, dict] = {**{m: {} for m in TINY}, "lgeu": {"parts": 2}}


def optim_fields(recipe_cls: type[BaseModel]) -> list[str]:
    from reid_bench.engine.recipe import OptimRecipe

    return [n for n, f in recipe_cls.model_fields.items() if f.annotation is OptimRecipe]


def base_recipe(method: str) -> dict:
    """The tiny recipe of ``method`` as a plain dict (validated)."""
    cls = METHODS.get(method).Recipe
    tree: dict = {"input": {"height": 64, "width": 32},
                  "backbone": {"pretrained": "none", "width": 0.25}}
    for stage in optim_fields(cls):
        tree[stage] = {"batch_size": 8, "epochs": 3}
    tree = _merge(tree, TINY[method])
    return cls.model_validate(tree).model_dump(mode="python")


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ------------------------------------------------------------------------------ leaf fields




def leaf_annotation(cls: type[BaseModel], path: tuple[str, ...]) -> Any:
    for name in path[:-1]:
        cls = cls.model_fields[name].annotation
    return cls.model_fields[path[-1]].annotation


def get_in(tree: dict, path: tuple) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def set_in(tree: dict, path: tuple, value: Any) -> dict:
    """A copy of ``tree`` with ``path`` set to ``value``."""
    if len(path) == 1:
        return {**tree, path[0]: value}
    return {**tree, path[0]: set_in(tree.get(path[0]) or {}, path[1:], value)}


#: Values to try for leaves whose type says too little (optional tuples, free strings).
#: Keyed by the leaf's own name.
EXPLICIT: dict[str, list] = {
    "resize": [(72, 36)],
    "crop_scale": [(0.5, 1.0)],
    "crop_aspect": [(1.0, 1.5)],
    "pretrained": ["imagenet"],
    "lr_steps": [(1,), (2,)],
    "grad_clip": [{"max_norm": 0.5}],
    "grad_clip_norm": [0.5],
}

#: Leaves that only act together with another value: the comparison is made with that
#: context in both the base and the perturbed recipe (not the leaf's fault it is dormant
#: without it). Keyed by the leaf's own name.
CONTEXT: dict[str, dict[str, Any]] = {
    # Test-time centre crop crops a resized image (InputRecipe docstring).
    "test_center_crop": {"resize": (72, 36)},
    # The lr factor acts at a step.
    "gamma": {"lr_steps": (1,)},
    # The negative:positive ratio grows by ``factor`` per epoch up to ``maximum``
    # (Verif-Identif Sec. III-F): a cap reached within the three tiny epochs.
    "maximum": {"factor": 2.0},
}
CONTEXT["crop_scale"] = CONTEXT["crop_aspect"] = {"crop_scale": (0.64, 1.0),
                                                  "crop_aspect": (2.0, 3.0)}

#: Leaves that only act under some row params (method, leaf) → params for both observations.
PARAM_CONTEXT: dict[tuple[str, str], dict] = {
    # The contrastive loss (Sec. IV-B) replaces the verification loss in some rows only.
    ("verif_identif", "loss.contrastive_margin"): {"losses": ["identification",
                                                              "contrastive"]},
}


def params_for(method: str, field: str) -> dict:
    return {**PARAMS[method], **PARAM_CONTEXT.get((method, field), {})}


def candidates(ann: Any, value: Any, name: str) -> list:
    """Values other than ``value`` that a leaf of type ``ann`` could take, most plausible
    first (each is validated by the caller)."""
    if name in EXPLICIT:
        return EXPLICIT[name]
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is Literal:
        return [a for a in args if a != value]
    if ann is bool:
        return [not value]
    if ann is int:  # 0 → 1 may be a no-op by definition (one warm-up epoch = full lr)
        return [value * 2 if value else 2, value + 1, value - 1]
    if ann is float:
        return [value * 0.5 if value else 0.5, value + 0.1, value * 2, 0.3]
    if args and type(None) in args:  # Optional[x]: try x's candidates
        inner = [a for a in args if a is not type(None)]
        return candidates(inner[0], value, name) if len(inner) == 1 else []
    return []


def perturbations(method: str) -> list[tuple[str, ...]]:
    """Every leaf of ``method``'s Recipe (``reid_bench.engine.recipe.recipe_leaves``: an optional
    sub-model such as ``grad_clip`` is one leaf) as a key path."""
    return [tuple(k.split(".")) for k in recipe_leaves(METHODS.get(method).Recipe)]


def perturbed(method: str, path: tuple[str, ...]) -> tuple[dict, dict, Any]:
    """(base recipe, perturbed recipe, new value) for leaf ``path`` of ``method``'s Recipe;
    both validate. Raises AssertionError when no candidate value validates."""
    cls = METHODS.get(method).Recipe
    base = base_recipe(method)
    for k, v in CONTEXT.get(path[-1], {}).items():
        base = set_in(base, path[:-1] + (k,), v)
    base = cls.model_validate(base).model_dump(mode="python")
    value = get_in(base, path)
    tried = []
    for cand in candidates(leaf_annotation(cls, path), value, path[-1]):
        new = set_in(base, path, cand)
        try:
            return base, cls.model_validate(new).model_dump(mode="python"), cand
        except ValidationError as exc:
            tried.append(f"{cand!r}: {exc.errors()[0]['msg']}")
    raise AssertionError(f"no valid value other than {value!r} for {method} recipe "
                         f"{'.'.join(path)}; tried {tried or 'nothing'}")


# -------------------------------------------------------------------------------- observing


def _num(x: torch.Tensor) -> list:
    """A tensor's shape and a few exact statistics (enough to tell two apart)."""
    x = x.detach().double()
    return [tuple(x.shape), float(x.sum()), float((x * x).sum()),
            float((x.flatten() * torch.arange(x.numel(), dtype=torch.float64)).sum())]


def _transform_of(ds: Any) -> str | None:
    for _ in range(4):
        if hasattr(ds, "transform"):
            return repr(ds.transform)
        ds = getattr(ds, "images", None)
        if ds is None:
            return None
    return None


def _sampler_state(s: Any) -> Any:
    if s is None:
        return None
    plain = {k: v for k, v in vars(s).items() if isinstance(v, (int, float, str, bool))}
    return type(s).__name__, sorted(plain.items()), _sampler_state(getattr(s, "pk", None))


class Recorder:
    """The seams ``observe`` puts in place of train_stage / get_or_train / build_backbone."""

    def __init__(self) -> None:
        self.stages: list[dict] = []
        self.builders: list[dict] = []
        self.cache: list[dict] = []  # per get_or_train: its kind, key and the stages inside

    def train_stage(self, model, loader, step, optim, *, groups=None, stage="train", **_):
        groups = groups or [(model.parameters(), 1.0)]
        opt = build_optimizer(groups, optim)
        hyper = []
        for g in opt.param_groups:
            hyper.append({**{k: v for k, v in g.items() if k != "params"},
                          "numel": sum(p.numel() for p in g["params"]),
                          "tensors": len(g["params"])})
        schedule = [[optim.lr_at(e) * g["lr_mult"] for g in opt.param_groups]
                    for e in range(optim.epochs)]
        sampler = (loader.batch_sampler if getattr(loader, "batch_size", None) is None
                   else loader.sampler)
        per_epoch = []
        for e in range(optim.epochs):  # samplers whose draw follows the epoch (pair ratio)
            _set_epoch(loader, e)
            per_epoch.append(_sampler_state(sampler))
        _set_epoch(loader, 0)
        model.train()
        torch.manual_seed(123)  # the same augmentation and dropout draws in every run
        batch = next(iter(loader))
        loss, scalars = step(batch)
        self.stages.append({
            "stage": stage, "optimizer": type(opt).__name__, "groups": hyper,
            "schedule": schedule, "epochs": optim.epochs,
            "grad_clip": None if optim.grad_clip is None else optim.grad_clip.model_dump(),
            "batch_size": loader.batch_size, "drop_last": loader.drop_last,
            "sampler": per_epoch,
            "transform": _transform_of(loader.dataset),
            "batch": [_num(b) for b in batch if torch.is_tensor(b)],
            "loss": float(loss.detach()),
            "scalars": sorted((k, float(v)) for k, v in scalars.items()),
        })
        return []

    def get_or_train(self, cache, kind, key, train, build, **_):
        first = len(self.stages)
        model = train()
        self.cache.append({"kind": kind, "key": stable_hash(key),
                           "stages": self.stages[first:]})
        return model, Path("."), True

    def build_backbone(self, real):
        def build(name, *, width=1.0, pretrained="none", **kw):
            self.builders.append({"name": name, "width": width, "pretrained": pretrained,
                                  **kw})
            return real(name, width=width, pretrained="none", **kw)
        return build


def observe(method_name: str, params: dict, recipe: dict, ds: ReidDataset, work: Path,
            monkeypatch) -> dict:
    """Everything ``method_name`` builds, trains with and evaluates with for this recipe (see
    the module docstring), as a comparable dict."""
    method = METHODS.get(method_name)()
    p = method.Params.model_validate(params)
    r = method.Recipe.model_validate(recipe)
    rec = Recorder()
    from reid_bench.models import backbones

    real = backbones.build_backbone
    for name, mod in list(sys.modules.items()):
        if not name.startswith("reid_bench.models.") or mod is backbones:
            continue
        if hasattr(mod, "train_stage"):
            monkeypatch.setattr(mod, "train_stage", rec.train_stage)
        if hasattr(mod, "get_or_train"):
            monkeypatch.setattr(mod, "get_or_train", rec.get_or_train)
        if getattr(mod, "build_backbone", None) is real:
            monkeypatch.setattr(mod, "build_backbone", rec.build_backbone(real))
    # As the runner resolves it: the backbone owns the preprocessing; normalize: mean_image
    # needs the training set's mean colour.
    pre = preprocess_for(getattr(r, "input", None), method.backbone_name(p), ds)
    ctx = CellContext(dataset=ds, device=torch.device("cpu"), seed=0, cache=None,
                      work_dir=work, preprocessing=pre)
    torch.manual_seed(0)
    model = method.fit(p, r, ctx)
    test_inp = method.test_input(r)
    tf = build_transform(test_inp, train=False, mean_colour=pre.mean_colour,
                         backbone=pre.backbone)
    from reid_bench.data.torch_dataset import open_image

    model.eval()
    with torch.no_grad():
        x = torch.stack([tf(open_image(s)) for s in ds.gallery])
        desc = method.features(model, p)(x)
    monkeypatch.undo()
    return {"builders": rec.builders, "stages": rec.stages, "cache": rec.cache,
            "test_input": test_inp.model_dump(), "test_transform": repr(tf),
            "descriptor": _num(desc),
            "params": sum(t.numel() for t in model.parameters())}


def differences(a: dict, b: dict) -> list[str]:
    """Top-level (and per-stage) keys where two observations differ. The cache keys are not
    compared: a key that hashes a whole recipe block changes with a field nothing reads."""
    out = [k for k in a if k not in ("stages", "cache") and a[k] != b.get(k)]
    sa, sb = a["stages"], b["stages"]
    if len(sa) != len(sb):
        out.append("stages")
    else:
        for x, y in zip(sa, sb, strict=True):
            out += [f"{x['stage']}.{k}" for k in x if x[k] != y.get(k)]
    return out


def stale_cache(a: dict, b: dict) -> list[str]:
    """Cached stages (``get_or_train``) whose training differs between two observations while
    their cache key does not: the second run would reuse the first one's model."""
    out = []
    for x, y in zip(a["cache"], b["cache"], strict=True):
        if x["kind"] == y["kind"] and x["key"] == y["key"] and x["stages"] != y["stages"]:
            out.append(x["kind"])
    return out
