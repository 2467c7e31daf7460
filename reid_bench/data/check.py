"""``reid-bench data check``: find each dataset under the data root and validate it.

A check loads the dataset (which validates folders and file names), compares ids, images
and cameras per split with the published statistics the loader records in
``meta["expected"]``, and opens every image of every listed split: by default its header (an
empty or non-image file fails), with ``deep`` a full decode (PIL's ``verify()`` does not notice a
truncated JPEG, a full decode does) with a progress bar; the Market-1501+500k distractors are
only counted. Every bad file is counted and the first ``MAX_LISTED`` are named.
``verify_loaded`` is the seconds-long version the runner calls on a loaded dataset before
training. The option sets checked per dataset are declared where the dataset registers
(``@DATASETS.register(name, check_variants=[...])``; default: once with default options).

"ids" counts identities with pid > 0 (Market's distractor label 0 and junk label -1 are not
identities); "cameras" counts distinct camids >= 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..core import console
from ..core.errors import DatasetError
from ..core.registry import DATASETS
from ..core.textable import text_table
from .base import ReidDataset, Sample, load_dataset, resolve_data_root
from .image_file import open_checked

STAT_SPLITS = ("train", "query", "gallery")
MAX_LISTED = 20  # bad files named per row; the rest are counted
APPROX_TOLERANCE = 0.01


def split_stats(samples: Sequence[Sample]) -> dict[str, int]:
    """{"ids", "images", "cameras"} of a split (see the module docstring)."""
    return {"ids": len({s.pid for s in samples if s.pid > 0}),
            "images": len(samples),
            "cameras": len({s.camid for s in samples if s.camid >= 0})}


def _compare(ds: ReidDataset) -> list[str]:
    """Mismatches between the dataset and ``meta["expected"]``."""
    problems = []
    for split, exp in ds.meta.get("expected", {}).items():
        if split == "distractors":
            found = ds.meta.get("num_distractors", 0)
            want = exp["images_approx"]
            if abs(found - want) > APPROX_TOLERANCE * want:
                problems.append(f"distractors: {found} images, expected about {want}")
            continue
        got = split_stats(ds.splits.get(split, []))
        for key, want in exp.items():
            if got[key] != want:
                problems.append(f"{split}: {got[key]} {key}, expected {want}")
    return problems


def _decode(path: str) -> str | None:
    """None if the image decodes fully, else the reason."""
    try:
        with open_checked(path) as im:  # size checked from the header before decoding
            im.load()
    except Exception as e:  # any decoder failure means the file is unusable
        return f"{type(e).__name__}: {e}"
    return None


def _header(path: str) -> str | None:
    """None if the file opens as an image within the pixel limit (header only: cheap), else
    the reason."""
    try:
        with open_checked(path) as im:
            im.size  # noqa: B018 - the header is parsed on open; size proves it was
    except Exception as e:  # any failure means the file is unusable
        return f"{type(e).__name__}: {e}"
    return None


def _intact(path: str) -> str | None:
    """None if the file exists, is not empty, opens as an image (header) and, for a JPEG, ends
    with its end-of-image marker (a truncated JPEG whose header survived lacks it; PIL only
    notices on a full decode), else the reason. Reads the header and the last bytes only."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        return f"missing ({e.strerror or type(e).__name__})"
    if size == 0:
        return "empty file"
    reason = _header(path)
    if reason is not None:
        return reason
    if path.lower().endswith((".jpg", ".jpeg")):
        try:
            with open(path, "rb") as f:
                f.seek(max(0, size - 64))
                tail = f.read()
        except OSError as e:
            return f"unreadable ({e.strerror or type(e).__name__})"
        # Scan data never holds FF D9 (an FF there is stuffed or a restart marker), so the
        # marker in the last bytes means the file ends where its encoder ended it.
        if b"\xff\xd9" not in tail:
            return "truncated JPEG: no end-of-image marker"
    return None


def _unreadable(paths: Sequence[str], deep: bool = True,
                progress: str | None = None, fn: Any = None) -> list[tuple[str, str]]:
    """(path, reason) for every path that does not decode fully (``deep``) or whose header does
    not open (or that ``fn(path) -> reason | None`` finds bad). Threads: PIL releases the GIL
    while decoding, so this scales with cores. With ``progress`` (a label) a progress bar
    (``core.console.progress``: on a terminal, never under ``--quiet``)."""
    fn = fn or (_decode if deep else _header)
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        it = pool.map(fn, paths, chunksize=64)
        if progress is not None:
            it = console.progress(it, desc=progress, unit="img", total=len(paths))
        reasons = list(it)
    return [(p, r) for p, r in zip(paths, reasons, strict=True) if r is not None]


def bad_file_lines(bad: Sequence[tuple[str, str]], what: str = "unreadable image") -> list[str]:
    """Problem lines for ``bad`` (path, reason) files: the count, then the first MAX_LISTED."""
    if not bad:
        return []
    head = f"{len(bad)} {what}(s)" + (f"; the first {MAX_LISTED}:" if len(bad) > MAX_LISTED
                                       else ":")
    return [head] + [f"{what} {p} ({r})" for p, r in bad[:MAX_LISTED]]


def _label(name: str, options: dict[str, Any]) -> str:
    if not options:
        return name
    return f"{name} ({', '.join(f'{k}={v}' for k, v in options.items())})"


def check_one(name: str, data_root: Path, options: dict[str, Any], decode: bool = True,
              deep: bool = True, progress: bool = False) -> dict:
    """The check row for dataset ``name`` with loader ``options`` (``decode``: open every image,
    fully when ``deep``, else its header; ``progress``: a progress bar): keys dataset, name, options,
    status ("ok", "missing" or "invalid"), root (str or None), stats ({split: split_stats}),
    problems (list of str, for "missing"/"invalid" the loader's full message)."""
    row: dict[str, Any] = {"dataset": _label(name, options), "name": name, "options": options,
                           "status": "ok", "root": None, "stats": {}, "problems": []}
    try:
        ds = load_dataset(name, data_root, **options)
    except DatasetError as e:
        row["status"] = "missing" if getattr(e, "missing", False) else "invalid"
        row["problems"] = [str(e)]
        return row
    row["root"] = str(ds.root)
    row["stats"] = {s: split_stats(ds.splits[s]) for s in STAT_SPLITS if s in ds.splits}
    if "num_distractors" in ds.meta:
        row["stats"]["distractors"] = {"ids": 0, "images": ds.meta["num_distractors"], "cameras": 0}
    problems = _compare(ds)
    if decode:
        paths = sorted({s.path for samples in ds.splits.values() for s in samples})
        bad = _unreadable(paths, deep=deep,
                          progress=f"decoding {_label(name, options)}" if progress else None)
        problems += bad_file_lines(bad)
    if problems:
        row["status"] = "invalid"
        row["problems"] = problems + ["Re-extract the dataset from its original archive."]
    return row


def check_variants(name: str) -> list[dict[str, Any]]:
    """The loader option sets ``data check`` checks dataset ``name`` with: its registered
    ``check_variants`` (empty: no default location, skipped), else once with default options."""
    return list(DATASETS.info(name).get("check_variants", [{}]))


def check_datasets(names: list[str] | None, data_root, deep: bool = False,
                   progress: bool = False) -> tuple[list[dict], bool]:
    """Check the datasets ``names`` (None = every registered dataset) under ``data_root``
    (resolved like ``--data-root``), each with its ``check_variants`` option sets.

    Returns (rows, ok): one ``check_one`` row per dataset and option set (a dataset without
    a default location, such as imagefolder, gets a "skipped" row), and ok = no row is "invalid" and, when
    ``names`` were given explicitly, none is "missing" either (unnamed datasets may simply not
    be installed). ``deep`` decodes every image fully (``progress``: with a progress bar);
    otherwise each image's header is opened."""
    root = resolve_data_root(data_root)
    explicit = names is not None
    rows = []
    for name in (names if explicit else DATASETS.names()):
        variants = check_variants(name)  # unknown name → RegistryError listing the valid ones
        if not variants:
            rows.append({"dataset": name, "name": name, "options": {}, "status": "skipped",
                         "root": None, "stats": {},
                         "problems": [f"{name} has no default location; it is checked when a "
                                      f"spec that uses it is run"]})
        for options in variants:
            rows.append(check_one(name, root, options, deep=deep, progress=progress))
    bad = {"invalid", "missing"} if explicit else {"invalid"}
    return rows, not any(r["status"] in bad for r in rows)


def load_verified(name: str, data_root: Path, options: dict[str, Any], *,
                  subset: bool = False) -> ReidDataset:
    """Registered dataset ``name`` loaded from ``data_root`` with ``options``, as a run uses it:
    checked with ``verify_loaded`` (counts too, unless ``subset``)."""
    ds = load_dataset(name, data_root, **options)
    verify_loaded(ds, name, options, counts=not subset)
    return ds


def verify_loaded(ds: ReidDataset, name: str, options: dict[str, Any] | None = None,
                  counts: bool = True) -> None:
    """Fail in seconds if the loaded dataset ``ds`` (registered ``name``, loader ``options``)
    is unusable; the runner calls it before training. The loader already checked folders, file
    names and .mat keys; this compares counts with the published statistics and decodes the
    first and last image of every split. ``counts=False`` (``--subset``, a deliberate subset)
    skips the counts: every split must still hold images. Raises DatasetError listing every
    problem and suggesting ``reid-bench data check``; returns None when the dataset looks
    usable."""
    options = options or {}
    problems = _compare(ds) if counts else [
        f"{s}: no images" for s in STAT_SPLITS if s in ds.splits and not ds.splits[s]]
    ends = [s.path for samples in ds.splits.values() if samples for s in (samples[0], samples[-1])]
    problems += [f"unreadable image {p} ({r})" for p, r in _unreadable(ends)]
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        hint = ("" if not counts else
                " If you use a deliberate subset of the dataset, run with --subset (results "
                "are then labelled subset).")
        raise DatasetError(
            f"dataset {_label(name, options)} at {ds.root} does not match what the paper used:\n"
            f"{listing}\nRe-extract it from its original archive; `reid-bench data check "
            f"{name}` lists every problem.{hint}")


def _cell(stats: dict[str, int] | None) -> str:
    if not stats:
        return "-"
    return f"{stats['ids']}/{stats['images']}/{stats['cameras']}"


def format_check_table(rows: list[dict]) -> str:
    """A plain-text table (dataset, status, ids/images/cameras per split, location), followed by
    each row's problems in full."""
    header = ["dataset", "status", "train", "query", "gallery", "location"]
    body = [[r["dataset"], r["status"], *(_cell(r["stats"].get(s)) for s in STAT_SPLITS),
             r["root"] or "-"] for r in rows]
    lines = text_table(header, body)
    lines.append("(train/query/gallery = ids/images/cameras; ids exclude distractor 0 and junk -1)")
    for r in rows:
        if r["problems"]:
            lines.append("")
            lines.append(f"{r['dataset']} [{r['status']}]:")
            lines += ["  " + ln for p in r["problems"] for ln in p.splitlines()]
    return "\n".join(lines)


class BadFilesError(DatasetError):
    """Files of a dataset are missing, empty or not (whole) images: the run's cell fails."""


def check_files(ds: ReidDataset, name: str, options: dict[str, Any] | None = None) -> None:
    """The cheap part of ``data check`` over every listed image of ``ds`` (registered ``name``,
    loader ``options``): each file exists, is not empty, its image header opens and a JPEG ends
    with its end-of-image marker. Seconds for Market-1501; the runner calls it once per
    dataset before the first training step. Raises BadFilesError naming the bad files (the
    first ``MAX_LISTED``) and the fix; returns None when every file passes."""
    paths = sorted({s.path for samples in ds.splits.values() for s in samples})
    bad = _unreadable(paths, fn=_intact)
    if bad:
        listing = "\n".join(f"  - {p} ({r})" for p, r in bad[:MAX_LISTED])
        more = f"\n  … and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        raise BadFilesError(
            f"dataset {_label(name, options or {})} at {ds.root}: {len(bad)} of {len(paths)} "
            f"image file(s) unusable, found before training:\n{listing}{more}\nRe-extract "
            f"the dataset from its original archive; `reid-bench data check {name}` lists "
            "every problem.")
