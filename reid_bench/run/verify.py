"""Check that each results row is what the runner wrote and what its stored model gives
(``reid-bench verify``).

What a row's own digest proves is limited: ``row_digest`` is an unkeyed hash, so it detects an
accidental or careless edit, never a forgery (anyone can recompute it). A row is therefore
cross-checked against the records written beside it:

- its cell JSON (``<results>/<paper>/<table>/<cell_id>.json``): the same fields, the same
  metrics, a config whose hash is the row's ``config_hash`` and whose tier is the row's;
- the trained-model artefact that JSON names (inside ``<results>/_artifacts``): its training
  key hashes to the row's ``train_hash`` and holds the row's recipe, training data and seed,
  its training record names the row's ``trained_commit``, its files are the ones the cell
  recorded (and, with ``hash_files``, their sha256 is still the one its manifest records);
- with ``--reevaluate`` (``reid_bench.run.reevaluate``), the stored model evaluated again gives
  the row's numbers.

A forged row must then forge all of these consistently, and still cannot make a stored model
give numbers it does not give: re-evaluation is what catches a smoke row rewritten as a full
one with the paper's numbers.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.hashing import stable_hash
from ..engine.artifacts import manifest_mismatch, read_manifest
from ..spec import specs_by_table
from ..store import results
from ..store.row_digest import _canon, row_edited
from ..table.plan import cell_label

CELL_JSON_MAX_BYTES = 64 << 20  # a cell JSON holds a CMC curve and a traceback: far less
ARTIFACTS = "_artifacts"


def cell_json_path(row: Mapping[str, Any], results_dir: Path) -> Path:
    """Where the cell JSON of ``row`` must be: named by the id its key gives (never by the
    row's own ``cell_id`` text, so no row can point outside the results folder)."""
    cid = results.cell_id(str(row["row"]), str(row["dataset"]), int(float(row["seed"])),
                          str(row["tier"]), results.split_of(row.get("split")),
                          str(row.get("variant") or ""))
    return results.cell_dir(results_dir, str(row["paper"]), str(row["table"])) / f"{cid}.json"


def read_cell_json(path: Path, results_dir: Path) -> tuple[dict | None, str | None]:
    """(payload, None) or (None, why it cannot be read); bounded and kept inside
    ``results_dir``."""
    root = Path(results_dir).resolve()
    try:
        real = path.resolve()
        if not real.is_relative_to(root):
            return None, f"cell JSON {path} resolves outside the results folder"
        if real.stat().st_size > CELL_JSON_MAX_BYTES:
            return None, f"cell JSON {path} is larger than {CELL_JSON_MAX_BYTES} bytes"
        data = json.loads(real.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no cell JSON {path}"
    except (OSError, ValueError) as exc:
        return None, f"cell JSON {path} is unreadable ({exc})"
    if not isinstance(data, dict) or not isinstance(data.get("row"), dict):
        return None, f"cell JSON {path} is not a record this tool wrote"
    return data, None


def artefact_folder(payload: Mapping[str, Any], results_dir: Path,
                    artifacts_dir: Path | None = None) -> Path | None:
    """The trained-model folder a cell JSON names, relocated under ``results_dir`` (the JSON
    stores the path as the run saw it); None when it names none or one outside. With
    ``artifacts_dir`` (the run's ``--artifacts-dir``): relocated under that folder instead,
    as ``[_shakedown/]<kind>/<hash>`` (``engine.artifacts.ArtifactCache.path_for``)."""
    named = payload.get("trained_artifact")
    if not isinstance(named, str):
        return None
    parts = Path(named).parts
    if artifacts_dir is not None:
        base = Path(artifacts_dir)
        rel = parts[-3:] if len(parts) >= 3 and parts[-3] == "_shakedown" else parts[-2:]
        if len(rel) < 2:
            return None
    elif ARTIFACTS in parts:
        base, rel = Path(results_dir), parts[len(parts) - 1 - parts[::-1].index(ARTIFACTS):]
    else:
        return None
    folder = base.joinpath(*rel)
    return folder if ".." not in rel and folder.resolve().is_relative_to(base.resolve()) else None


def _folder_has_records(folder: Path) -> bool:
    """Whether ``folder`` holds a cell JSON the runner wrote (``cellrow.record`` starts each
    with its ``row``); cached per folder state."""
    try:
        stamp = folder.stat().st_mtime_ns
    except OSError:
        return False
    return _has_records(str(folder), stamp)


@functools.lru_cache(maxsize=256)
def _has_records(folder: str, _stamp: int) -> bool:
    for p in Path(folder).glob("*.json"):
        try:
            with open(p, "rb") as f:
                if f.read(16).startswith(b'{\n "row": {'):
                    return True
        except OSError:
            continue
    return False


def _dataset_name(d: Any) -> str:
    return str(d.get("name", "?")) if isinstance(d, dict) else str(d)


def _same(a: Any, b: Any) -> bool:
    return _canon(a) == _canon(b)


def _metric_diff(recorded: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    have = results.metric_values(dict(row))
    out = []
    for m, v in sorted(recorded.items()):
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if m not in have or not math.isclose(x, have[m], rel_tol=1e-9, abs_tol=1e-9):
            out.append(f"{m} {have.get(m)} (cell JSON: {x:g})")
    return out


def row_consistency(row: Mapping[str, Any], results_dir: Path, *, strict: bool = False,
                    hash_files: bool = False, artifacts_dir: Path | None = None) -> str | None:
    """Why results ``row`` (as read back) disagrees with the records written beside it, or
    None. Without ``strict`` only contradictions count (a record that exists and disagrees);
    with it a missing cell JSON or artefact does too. ``hash_files``: also re-hash the
    artefact's files against its manifest (reads the whole model). ``artifacts_dir``: where
    the run kept its trained models when not in ``results_dir`` (``run --artifacts-dir``)."""
    results_dir = Path(results_dir)
    try:
        path = cell_json_path(row, results_dir)
    except (KeyError, TypeError, ValueError) as exc:
        return f"row key is malformed ({exc})"
    if strict and _canon(row.get("cell_id")) and not _same(row.get("cell_id"), path.stem):
        return f"its cell_id {row.get('cell_id')!r} is not the id of its key ({path.stem})"
    payload, why = read_cell_json(path, results_dir)
    if payload is None:
        if strict or ("no cell JSON" in (why or "") and _folder_has_records(path.parent)):
            # Without strict: only where the runner wrote its records (a table whose other
            # rows have theirs), so a row added by hand stands out.
            return why + (" (the table's other rows have theirs)" if not strict else "")
        return None
    rec = payload["row"]
    differ = [c for c in results.COLUMNS if c != "row_digest" and c not in results.METRIC_COLUMNS
              and c in rec and not _same(rec.get(c), row.get(c))]
    if differ:
        return "row disagrees with its cell JSON on " + ", ".join(differ)
    diff = _metric_diff(payload.get("metrics") or {}, row)
    if diff:
        return "metrics disagree with its cell JSON: " + "; ".join(diff)
    config = payload.get("config")
    if isinstance(config, dict) and config:
        if not _same(stable_hash(config), row.get("config_hash")):
            return "its cell JSON's config does not hash to the row's config_hash"
        if not _same(config.get("tier"), row.get("tier")):
            return f"its cell JSON's config is tier {config.get('tier')}, the row says " \
                   f"{row.get('tier')}"
    if row.get("status") != "ok":
        return None
    return _artefact_consistency(row, payload, results_dir, strict=strict,
                                 hash_files=hash_files, artifacts_dir=artifacts_dir)


def _artefact_consistency(row: Mapping[str, Any], payload: Mapping[str, Any], results_dir: Path,
                          *, strict: bool, hash_files: bool,
                          artifacts_dir: Path | None = None) -> str | None:
    folder = artefact_folder(payload, results_dir, artifacts_dir)
    if folder is None or not (folder / "config.json").is_file():
        where = payload.get("trained_artifact")
        return (f"no stored model at {folder or where}" if strict and where else None)
    try:
        key = json.loads((folder / "config.json").read_text())
        training = json.loads((folder / "training.json").read_text()) \
            if (folder / "training.json").is_file() else {}
    except (OSError, ValueError) as exc:
        return f"stored model {folder}: unreadable record ({exc})"
    if not _same(stable_hash(key), row.get("train_hash")):
        return f"stored model {folder.name}: its training key does not hash to the row's " \
               "train_hash"
    config = payload.get("config") or {}
    if isinstance(key, dict) and isinstance(config, dict) and config:
        data = config.get("train_dataset") or config.get("dataset")
        for what, theirs, ours in (("recipe", key.get("recipe"), config.get("recipe")),
                                   ("training data", key.get("dataset"), data),
                                   ("seed", key.get("seed"), config.get("seed"))):
            if json.dumps(theirs, sort_keys=True, default=str) != json.dumps(
                    ours, sort_keys=True, default=str):
                return f"stored model {folder.name}: its {what} is not the row's (the row " \
                       f"claims tier {row.get('tier')}; the model was trained on " \
                       f"{_dataset_name(key.get('dataset'))})"
    if _canon(row.get("trained_commit")) and not _same(training.get("git_commit"),
                                                       row.get("trained_commit")):
        return f"stored model {folder.name}: trained at commit " \
               f"{training.get('git_commit')}, the row says {row.get('trained_commit')}"
    recorded = payload.get("trained_files")
    if isinstance(recorded, dict) and recorded != read_manifest(folder):
        return f"stored model {folder.name}: its files are not the ones the cell recorded"
    if hash_files:
        bad = manifest_mismatch(folder)
        if bad:
            return f"stored model {folder.name}: {bad}"
    return None


@dataclass
class RowCheck:
    """The outcome of verifying one results row."""

    csv: Path
    row: dict[str, Any]
    problem: str | None = None
    reevaluated: dict[str, float] | None = None

    @property
    def label(self) -> str:
        r = self.row
        cell = cell_label(r["row"], r["dataset"], results.split_of(r.get("split")),
                          int(float(r["seed"])))
        return (f"{r['paper']}/{r['table']}: {cell} "
                f"[{r['tier']}{', ' + r['variant'] if r['variant'] else ''}]")


def verify_folder(results_dir: Path, *, reevaluate: bool = False,
                  spec_paths: list[str] | None = None, data_root: Path | None = None,
                  device: str = "cpu", tolerance: float = 0.01,
                  artifacts_dir: Path | None = None) -> list[RowCheck]:
    """Every row of every table CSV under ``results_dir``: its digest, its cell JSON and its
    artefact (strict, files re-hashed; under ``artifacts_dir`` when the run kept them there),
    and with ``reevaluate`` its numbers from the stored model (``reid_bench.run.reevaluate``;
    within ``tolerance`` percentage points)."""
    out = []
    specs = specs_by_table(spec_paths)
    for csv, df in results.all_results(Path(results_dir)):
        for rec in df.to_dict("records"):
            check = RowCheck(csv, rec)
            check.problem = (row_edited(rec) or row_consistency(rec, results_dir, strict=True,
                                                                 hash_files=True,
                                                                 artifacts_dir=artifacts_dir)
                             or _spec_disagrees(rec, specs, Path(results_dir)))
            if check.problem is None and reevaluate and rec.get("status") == "ok":
                from .reevaluate import reevaluate_row

                check.reevaluated, check.problem = reevaluate_row(
                    rec, Path(results_dir), spec_paths=spec_paths, data_root=data_root,
                    device=device, tolerance=tolerance, artifacts_dir=artifacts_dir)
            out.append(check)
    return out


def _spec_disagrees(row: Mapping[str, Any], specs: dict, results_dir: Path) -> str | None:
    """Why an ok canonical row's config is not the one its spec gives its cell now (the same
    comparison as ``status`` and the report's stale flag), or None (also when unknowable)."""
    spec = specs.get((str(row["paper"]), str(row["table"])))
    if spec is None or row.get("status") != "ok" or row.get("variant"):
        return None
    from ..table.plan import Cell
    from ..table.status import ConfigHashes

    spec_row = next((r for r in spec.rows if r.name == row["row"]), None)
    if spec_row is None or not spec_row.runnable:
        return None
    cell = Cell(spec_row, str(row["dataset"]), int(float(row["seed"])), str(row["tier"]),
                results.split_of(row.get("split")), "")
    if ConfigHashes(spec, results_dir).is_stale(cell, str(row.get("config_hash"))):
        return (f"its config_hash is not the one {spec.path if hasattr(spec, 'path') else 'the spec'} "
                f"gives a {row['tier']} cell now: the recipe changed (stale), or the row "
                "was never this cell's")
    return None
