"""The embedded default dataset: synthetic pedestrians written in the exact Market-1501 layout.

Why a generator: real re-id datasets cannot be redistributed, but a smoke run must train a real
model end to end and show that training helps. Each identity is a fixed combination of
body-part colours (hair, skin, torso, legs, shoes), a torso texture (plain, horizontal stripes,
vertical stripes or checks, with its own frequency and colour), a build and an optional bag.
Cameras differ by background and illumination (per-channel gain and offset); every image gets
viewpoint jitter (shift, scale, mirror), brightness jitter, sensor noise and JPEG compression.
So identities are learnable from appearance but no two images of an identity are identical,
and a trained model separates the disjoint test identities far better than an untrained one.

Layout and naming follow Market-1501 exactly (see ``market1501``), including distractors
(``0000_...``) and junk images (``-1_...``, background or badly cropped people) in the gallery
and ``gt_bbox/`` images for multiple query, and the result is read back by the same Market
loader. Images are 128×64 (h×w), Market's native size, so a recipe's resize/crop does the same
work as on the real data; they are tiny JPEGs, so decoding is not the bottleneck.

Generated once per option set into ``<cache>/synthetic/v<version>-<hash>/Market-1501-v15.09.15/``
(the cache folder, ``reid_bench.core.cache_dir``: the data root is never written), built in a
temporary folder and renamed into place (atomic). Same options → same bytes. A copy already under
``<data root>/synthetic/`` (written by earlier versions) is used as it is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import build_dir
from ..core.cache_dir import resolve_cache_dir
from ..core.errors import DatasetError
from ..core.hashing import short_hash
from ..core.registry import DATASETS
from .base import ReidDataset
from .market1501 import MARKET_NAMES, NameFormat, load_market_layout

#: Bump when the generator's output changes, so old caches are not reused.
GENERATOR_VERSION = 1
LAYOUT_DIR = "Market-1501-v15.09.15"


@dataclass(frozen=True)
class SyntheticOptions:
    """Generator options (the ``synthetic`` dataset's loader options).

    Train: ``num_train_ids`` × ``num_cams`` × ``images_per_cam`` images. Test: each of
    ``num_test_ids`` identities gets ``num_cams`` × ``images_per_cam`` images, of which
    ``queries_per_id`` (each from a different camera) go to query and the rest to the gallery;
    ``mq_per_query`` extra images of the same identity and camera per query go to gt_bbox/.
    The gallery also holds ``num_distractors`` one-off people (pid 0) and ``num_junk`` junk
    images (pid -1). Train and test identities are disjoint, as in Market-1501.
    """

    num_train_ids: int = 48
    num_test_ids: int = 48
    num_cams: int = 6
    images_per_cam: int = 2
    queries_per_id: int = 2
    mq_per_query: int = 2
    num_distractors: int = 30
    num_junk: int = 15
    height: int = 128
    width: int = 64
    seed: int = 0

    def validate(self) -> None:
        """Raise DatasetError naming the first impossible option."""
        checks = [
            (self.num_train_ids >= 1 and self.num_test_ids >= 1, "num_train_ids and num_test_ids must be >= 1"),
            (self.num_train_ids + self.num_test_ids <= 9999, "num_train_ids + num_test_ids must be <= 9999 (4-digit ids)"),
            (2 <= self.num_cams <= 9, "num_cams must be in 2..9 (file names carry one camera digit)"),
            (self.images_per_cam >= 1, "images_per_cam must be >= 1"),
            (1 <= self.queries_per_id < self.num_cams, "queries_per_id must be in 1..num_cams-1, so each query has a match in another camera"),
            (self.mq_per_query >= 0 and self.num_distractors >= 0 and self.num_junk >= 0, "mq_per_query, num_distractors and num_junk must be >= 0"),
            (self.height >= 32 and self.width >= 16, "height must be >= 32 and width >= 16"),
        ]
        for ok, msg in checks:
            if not ok:
                raise DatasetError(f"synthetic dataset options {asdict(self)}: {msg}.")

    def cache_key(self) -> str:
        blob = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return f"v{GENERATOR_VERSION}-{short_hash(blob, 12)}"

    def expected(self) -> dict[str, dict[str, int]]:
        """Statistics the generated dataset must have ("ids" = pids > 0), for ``data check``."""
        per_id = self.num_cams * self.images_per_cam
        return {
            "train": {"ids": self.num_train_ids, "images": self.num_train_ids * per_id,
                      "cameras": self.num_cams},
            "query": {"ids": self.num_test_ids, "images": self.num_test_ids * self.queries_per_id,
                      "cameras": min(self.num_cams, self.num_test_ids * self.queries_per_id)},
            "gallery": {"ids": self.num_test_ids,
                        "images": self.num_test_ids * (per_id - self.queries_per_id)
                        + self.num_distractors + self.num_junk,
                        "cameras": self.num_cams},
        }


# ----------------------------------------------------------------------------- rendering

def _identity(seed: int, key: int) -> dict:
    """Appearance of one person; ``key`` = pid, or 100000 + i for the i-th distractor."""
    rng = np.random.default_rng([seed, 1, key])
    return {
        "skin": rng.uniform([140, 90, 60], [240, 200, 170]),
        "hair": rng.uniform(0, 140, 3),
        "torso": rng.uniform(0, 255, 3),
        "stripe": rng.uniform(0, 255, 3),
        "pattern": int(rng.integers(0, 4)),  # plain, horizontal, vertical, checks
        "freq": rng.uniform(2.5, 6.0),
        "legs": rng.uniform(0, 255, 3),
        "shorts": bool(rng.random() < 0.25),
        "shoes": rng.uniform(0, 90, 3),
        "bag": bool(rng.random() < 0.4),
        "bag_colour": rng.uniform(0, 255, 3),
        "build": rng.uniform(0.30, 0.42),
    }


def _camera(seed: int, cam: int) -> dict:
    rng = np.random.default_rng([seed, 2, cam])
    return {
        "gain": rng.uniform(0.65, 1.35, 3),
        "offset": rng.uniform(-20, 20, 3),
        "bg": rng.uniform(50, 210, 3),
        "grad": rng.uniform(-60, 60, 3),
    }


def _render(ident: dict | None, cam: dict, rng: np.random.Generator, h: int, w: int,
            junk: bool = False) -> np.ndarray:
    """One h×w×3 uint8 image of ``ident`` seen by camera ``cam`` (``ident`` None = background
    only). ``junk`` places the person mostly outside the frame, like a bad detection."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Background: camera colour, vertical gradient, blocky low-frequency clutter.
    clutter = rng.normal(0, 14, (h // 8 + 1, w // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:h, :w]
    img = cam["bg"] + (yy / h - 0.5)[..., None] * cam["grad"] + clutter
    if ident is not None:
        scale = rng.uniform(0.85, 1.05)
        ph = h * 0.92 * scale
        pw = ph * ident["build"]
        cx = w / 2 + rng.uniform(-0.1, 0.1) * w
        top = rng.uniform(0.0, 0.08) * h
        if junk:
            top = rng.uniform(0.5, 0.8) * h
            cx = rng.uniform(0, w)
        u = (xx - cx) / pw
        v = (yy - top) / ph
        if rng.random() < 0.5:  # viewpoint: mirror (moves the bag to the other side)
            u = -u
        au = np.abs(u)
        legs = (v >= 0.56) & (v < 0.95) & (np.abs(au - 0.2) < 0.16)
        img[legs] = ident["legs"]
        if ident["shorts"]:
            img[legs & (v >= 0.72)] = ident["skin"]
        img[(v >= 0.95) & (v < 1.0) & (np.abs(au - 0.2) < 0.18)] = ident["shoes"]
        torso = (v >= 0.16) & (v < 0.56) & (au < 0.5 - 0.1 * (v - 0.16))
        sleeves = (v >= 0.18) & (v < 0.5) & (au >= 0.45) & (au < 0.62)
        img[torso | sleeves] = ident["torso"]
        pat = ident["pattern"]
        if pat:
            hs = np.sin(2 * np.pi * ident["freq"] * v / 0.4) > 0
            vs = np.sin(2 * np.pi * ident["freq"] * u) > 0
            on = hs if pat == 1 else vs if pat == 2 else hs ^ vs
            img[torso & on] = ident["stripe"]
        head = (u / 0.2) ** 2 + ((v - 0.08) / 0.075) ** 2 <= 1
        img[head] = ident["skin"]
        img[head & (v < 0.065)] = ident["hair"]
        if ident["bag"]:
            img[(u > 0.45) & (u < 0.78) & (v > 0.3) & (v < 0.55)] = ident["bag_colour"]
    bright = rng.uniform(0.85, 1.15)
    img = img * (cam["gain"] * bright) + cam["offset"] + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write(img: np.ndarray, path: Path) -> None:
    from PIL import Image  # deferred: keeps the registry's import of this module light

    Image.fromarray(img).save(path, format="JPEG", quality=90)


def generate(out_dir: Path, opt: SyntheticOptions) -> None:
    """Write the dataset for ``opt`` into ``out_dir`` (bounding_box_train/, bounding_box_test/,
    query/, gt_bbox/). Deterministic: the same options give the same files and bytes."""
    opt.validate()
    h, w = opt.height, opt.width
    dirs = {k: out_dir / k for k in ("bounding_box_train", "bounding_box_test", "query", "gt_bbox")}
    for d in dirs.values():
        d.mkdir(parents=True)
    cams = [_camera(opt.seed, c) for c in range(opt.num_cams)]
    # Market ids are a sparse subset of 1..1501 split between train and test: shuffle, then split.
    order = np.random.default_rng([opt.seed, 0]).permutation(opt.num_train_ids + opt.num_test_ids) + 1
    train_ids = sorted(int(p) for p in order[:opt.num_train_ids])
    test_ids = sorted(int(p) for p in order[opt.num_train_ids:])
    frame = 0

    def shot(key: int, pid_txt: str, cam: int, folder: str, ident: dict | None, junk: bool = False):
        nonlocal frame
        frame += 1  # a running frame number keeps every file name unique
        rng = np.random.default_rng([opt.seed, 3, frame])
        img = _render(ident, cams[cam], rng, h, w, junk)
        _write(img, dirs[folder] / f"{pid_txt}_c{cam + 1}s1_{frame:06d}_00.jpg")

    for pid in train_ids:
        ident = _identity(opt.seed, pid)
        for cam in range(opt.num_cams):
            for _ in range(opt.images_per_cam):
                shot(pid, f"{pid:04d}", cam, "bounding_box_train", ident)
    for i, pid in enumerate(test_ids):
        ident = _identity(opt.seed, pid)
        # Query cameras rotate over identities so every camera holds queries.
        qcams = {(i * opt.queries_per_id + j) % opt.num_cams for j in range(opt.queries_per_id)}
        for cam in range(opt.num_cams):
            for k in range(opt.images_per_cam):
                is_query = cam in qcams and k == 0
                shot(pid, f"{pid:04d}", cam, "query" if is_query else "bounding_box_test", ident)
                if is_query:
                    for _ in range(opt.mq_per_query):
                        shot(pid, f"{pid:04d}", cam, "gt_bbox", ident)
    for i in range(opt.num_distractors):
        shot(0, "0000", i % opt.num_cams, "bounding_box_test", _identity(opt.seed, 100000 + i))
    for i in range(opt.num_junk):
        # Half empty background, half a person cut by the frame (bad detections).
        ident = _identity(opt.seed, 200000 + i) if i % 2 else None
        shot(-1, "-1", i % opt.num_cams, "bounding_box_test", ident, junk=True)


def synthetic_dir(cache_root: Path, opt: SyntheticOptions) -> Path:
    """The Market-layout folder of the synthetic dataset for ``opt`` under
    ``cache_root/synthetic/``, generating it first (atomically) if it is not cached yet."""
    opt.validate()
    cache = Path(cache_root) / "synthetic" / opt.cache_key()

    def build(tmp: Path) -> None:
        generate(tmp / LAYOUT_DIR, opt)
        (tmp / "synthetic.json").write_text(
            json.dumps({"generator_version": GENERATOR_VERSION, "options": asdict(opt)},
                       indent=2, sort_keys=True))

    try:
        build_dir(cache, build)
    except OSError as e:
        raise DatasetError(f"cannot write the synthetic dataset under {cache.parent}: {e}. "
                           f"Point --cache-dir / $REID_BENCH_CACHE at a writable folder.") from e
    return cache / LAYOUT_DIR


@DATASETS.register("synthetic", train_images=lambda options: (
    SyntheticOptions(**options).expected()["train"]["images"], ""))
def load_synthetic(root: Path, **options) -> ReidDataset:
    """The synthetic dataset (generated into the cache folder; an existing copy under data root
    ``root`` is reused); ``options`` are SyntheticOptions fields (unknown names raise
    DatasetError listing the valid ones)."""
    valid = set(SyntheticOptions.__dataclass_fields__)
    unknown = set(options) - valid
    if unknown:
        raise DatasetError(f"unknown synthetic dataset option(s) {sorted(unknown)}; "
                           f"valid: {sorted(valid)}.")
    opt = SyntheticOptions(**options)
    names = NameFormat(MARKET_NAMES.regex, opt.num_cams, MARKET_NAMES.example)
    legacy = Path(root) / "synthetic" / opt.cache_key() / LAYOUT_DIR
    folder = legacy if legacy.is_dir() else synthetic_dir(resolve_cache_dir(), opt)
    ds = load_market_layout(folder, "synthetic", synthetic=True, names=names,
                            expected=opt.expected())
    ds.meta["options"] = asdict(opt)
    return ds
