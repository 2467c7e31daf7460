"""One results row's state, computed once: what every view (report tables, figures, index,
LaTeX, JSON, ``compare``, ``status``, the runner's finished-cell check) shows about a number.

``RowStates(spec, data_fingerprints=...).state(rec)`` turns a results CSV row into a
``RowState``: its tier, variant, subset, whether it is synthetic, edited (digest mismatch),
stale (recorded with another config than the current spec gives the cell), whether its data
fingerprint matches the current data, and its training precision. From those:

- ``flags``: every reason the number must be read with care, in ``FLAGS`` order; a view that
  shows the number shows all of them (the property test ``tests/test_rowstate_views.py``
  renders every combination through every view and checks this);
- ``comparable``: whether the number may be compared with the paper's (no flag but a
  precision one);
- ``withheld``: the verdict key that replaces "reproduced/better/worse" when it is not
  (``report.verdicts``);
- ``block``: where a page shows it. Only ``"headline"`` (the full tier of the page's own
  variant) is the table's number; smoke, shakedown, smoke recipe, subset and every other
  variant are their own labelled blocks, never the headline.

Data fingerprints: a row's ``dataset_fingerprint`` is compared with the current fingerprint of
its dataset (keyed by the registered dataset name, the CSV's ``dataset_name``) only when the
caller knows it. The report does not read the datasets, so there ``data`` is
``"not checked"``: no flag, never a guess (the provenance section still warns when one column
mixes fingerprints). The runner, which loads the data, can supply it.

Precision: a non-fp32 training (bf16, fp16, tf32) is flagged wherever the number shows, but
keeps its verdict: it ran the paper's recipe on the paper's data, with other numerics.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..store.columns import SHRUNK_TIERS
from ..store.results import split_of
from ..store.row_digest import row_edited
from .overrides import overrides_from_json, spec_parts, variant_parts

log = logging.getLogger(__name__)

DATA_MATCH, DATA_CHANGED, DATA_NOT_CHECKED = "match", "changed", "not checked"
# accel.PAPER_PRECISION, the papers' training precision: not imported, so that status and the
# report never import torch (tests/test_rowstate.py checks the two agree).
PAPER_PRECISION = "fp32"

# Every flag a number can carry, in display order; what each means (legends, footnotes).
FLAG_TEXT: dict[str, str] = {
    "synthetic": "computed on the synthetic stand-in data (--smoke): tests the pipeline",
    "shakedown": "--shakedown: the full recipe for a few steps on synthetic data",
    "smoke recipe": "computed with --smoke-recipe: the spec's shrunk recipe on the real data",
    "subset": "computed with --subset on a deliberate subset of the real dataset",
    "variant": "deviates from the paper's recipe (a spec copy, --set or an assumption variant)",
    "edited": "the results row was changed by hand after it was written",
    "stale": "recorded with another recipe than the current spec's",
    "data changed": "computed on other data than the dataset's current fingerprint",
}
FLAGS = tuple(FLAG_TEXT)
# The verdict that replaces the comparison, most severe first (report.verdicts keys).
WITHHOLD_ORDER = (("edited", "edited"), ("stale", "stale"), ("data changed", "data changed"),
                  ("variant", "variant"), ("shakedown", "synthetic"), ("synthetic", "synthetic"),
                  ("subset", "not comparable"), ("smoke recipe", "not comparable"))
# Blocks of a page other than the headline, in display order, with their label.
BLOCKS: dict[str, str] = {
    "smoke": "smoke tier: synthetic stand-in data, shrunk recipe — not comparable",
    "shakedown": "shakedown tier: the full recipe for a few steps on synthetic data — "
                 "not comparable",
    "smoke_recipe": "smoke-recipe tier: the spec's shrunk recipe on the real data — "
                    "not comparable",
}


def precision_flag(precision: str) -> str:
    """The flag of a training precision other than the papers' fp32, e.g. "bf16"."""
    return f"precision {precision}"


@dataclass(frozen=True)
class RowState:
    """The state of one results row (see the module docstring)."""

    tier: str
    variant: str
    status: str
    synthetic: bool
    subset: bool
    deviation: tuple[str, ...]  # variant parts other than "subset" (spec:, set:, variant:)
    home: str  # the variant of the page's own spec ("" = canonical)
    edited: str  # why the row is not as written, "" when its digest matches
    stale: bool
    data: str  # DATA_MATCH | DATA_CHANGED | DATA_NOT_CHECKED
    precision: str  # "" for the papers' fp32 (or unrecorded)
    config_hash: str
    data_fingerprint: str

    @property
    def flags(self) -> tuple[str, ...]:
        """Every flag of the number, ``FLAGS`` order, then its precision."""
        on = {"synthetic": self.synthetic and self.tier != "shakedown",
              "shakedown": self.tier == "shakedown", "smoke recipe": self.tier == "smoke_recipe",
              "subset": self.subset, "variant": bool(self.deviation),
              "edited": bool(self.edited), "stale": self.stale,
              "data changed": self.data == DATA_CHANGED}
        out = tuple(f for f in FLAGS if on[f])
        return out + ((precision_flag(self.precision),) if self.precision else ())

    @property
    def comparable(self) -> bool:
        """Whether the number may carry reproduced / better / worse."""
        return not self.withheld

    @property
    def withheld(self) -> str:
        """The verdict key replacing the comparison ("" when the number is comparable)."""
        flags = set(self.flags)
        return next((key for f, key in WITHHOLD_ORDER if f in flags), "")

    @property
    def block(self) -> str:
        """Where a page shows this row: "headline" (the full tier of the page's own variant),
        else the tier ("smoke", "shakedown", "smoke_recipe") or, for a full-tier result of
        another variant, "variant:<variant>"."""
        if self.tier != "full":
            return self.tier
        return "headline" if self.variant == self.home else f"variant:{self.variant}"

    def finished_for(self, config_hash: str, data_fingerprint: str | None) -> bool:
        """Whether this row is the finished result of a cell run now with ``config_hash`` on
        data with ``data_fingerprint``: ``finished.is_finished``, the one rule the runner, the
        launchers and ``status`` apply (an unknown fingerprint is never finished)."""
        from .finished import is_finished

        return is_finished({"status": self.status, "config_hash": self.config_hash,
                            "dataset_fingerprint": self.data_fingerprint},
                           config_hash, data_fingerprint)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _true(v: Any) -> bool:
    """A CSV flag column's value (bool after ``read_results``; numpy bools alike)."""
    return isinstance(v, (bool, int)) and bool(v) or type(v).__name__ == "bool_" and bool(v)


class RowStates:
    """States of the results rows of one spec's table.

    ``spec`` (None: no spec, so nothing is called stale) re-plans each row's cell to find its
    current config hash; ``data_fingerprints`` maps a registered dataset name to its current
    fingerprint, when the caller knows it."""

    def __init__(self, spec: Any = None, *, data_fingerprints: Mapping[str, str] | None = None):
        self.spec = spec
        self.home = "" if spec is None else ";".join(spec_parts(spec))
        self.fingerprints = dict(data_fingerprints or {})
        self._specs: dict[tuple[str, bool], Any] = {}

    def state(self, rec: Mapping[str, Any]) -> RowState:
        """The state of results row ``rec`` (a dict as ``results.read_results`` gives)."""
        variant = _text(rec.get("variant"))
        parts = variant_parts(variant)
        edited = row_edited(rec)
        fp = _text(rec.get("dataset_fingerprint"))
        name = _text(rec.get("dataset_name"))
        if name in self.fingerprints and fp:
            data = DATA_MATCH if fp == self.fingerprints[name] else DATA_CHANGED
        else:
            data = DATA_NOT_CHECKED
        precision = _text(rec.get("precision"))
        chash = _text(rec.get("config_hash"))
        stale = False
        # Stale is checked on edited rows too: each flag says one thing; both may hold.
        if rec.get("status") == "ok" and chash:
            current = self.current_config_hash(rec)
            stale = current is not None and current != chash
        return RowState(
            tier=str(rec.get("tier") or "full"), variant=variant, status=str(rec.get("status")),
            synthetic=_true(rec.get("synthetic")) or rec.get("tier") in ("smoke", "shakedown"),
            subset="subset" in parts or _true(rec.get("subset")),
            # A spec copy's own ``spec:`` part deviates too: its recipe is not the paper's.
            deviation=tuple(p for p in parts if p != "subset"),
            home=self.home, edited=edited, stale=stale, data=data,
            precision="" if precision in ("", PAPER_PRECISION) else precision,
            config_hash=chash, data_fingerprint=fp)

    def current_config_hash(self, rec: Mapping[str, Any]) -> str | None:
        """The config hash the current spec gives ``rec``'s cell in its tier and variant (its
        --set overrides, assumption variants, subset and shakedown options as recorded); None
        when it cannot be re-planned (another spec file's cell, an unknown row, a dataset
        without stand-in)."""
        if self.spec is None:
            return None
        from .plan import Cell, PlanOptions, config_hash
        from .shakedown import ShakedownOptions
        from .variants import variant_choices

        variant, tier = _text(rec.get("variant")), str(rec.get("tier") or "full")
        parts = variant_parts(variant)
        if {p for p in parts if p.startswith("spec:")} != set(spec_parts(self.spec)):
            return None  # another spec file's cell: that file decides its config
        try:
            spec = self._variant_spec(tuple(f"{k}={v}" for k, v in variant_choices(variant)),
                                      tier in SHRUNK_TIERS)
            row = next((r for r in spec.rows if r.name == rec.get("row")), None)
            if row is None or not row.runnable:
                return None
            shake = None
            if tier == "shakedown":
                mb = rec.get("max_batch")
                shake = ShakedownOptions(
                    steps=int(rec.get("shakedown_steps")),
                    pretrained="none" if rec.get("pretrained") == "none" else "spec",
                    max_batch=None if mb is None or mb != mb else int(mb))
            opts = PlanOptions(smoke=tier == "smoke", shakedown=shake,
                               overrides=overrides_from_json(rec.get("overrides")))
            cell = Cell(row, str(rec["dataset"]), int(rec["seed"]), tier,
                        split_of(rec.get("split")), variant)
            return config_hash(spec, cell, opts)
        except Exception as exc:  # noqa: BLE001 — not re-plannable now: the CSV is trusted
            log.debug("cannot re-plan %s: %s", rec.get("cell_id"), exc)
            return None

    def _variant_spec(self, choices: tuple[str, ...], smoke: bool) -> Any:
        key = (";".join(choices), smoke)
        if key not in self._specs:
            from .variants import apply_variant

            spec = self.spec
            for text in choices:
                spec = apply_variant(spec, text, smoke=smoke)[0]
            self._specs[key] = spec
        return self._specs[key]


def merge_flags(states: Iterable[RowState]) -> list[str]:
    """The flags of a number aggregated over ``states`` (its rows): each flag any row has, in
    ``FLAGS`` order, then the precisions."""
    return merge_flags_text(f for s in states for f in s.flags)


def merge_flags_text(flags: Iterable[str]) -> list[str]:
    """Distinct flag names in ``FLAGS`` order, then the precisions."""
    have = set(flags)
    return [f for f in FLAGS if f in have] + sorted(f for f in have if f not in FLAGS)


def flag_text(flag: str) -> str:
    """What ``flag`` means, in one phrase."""
    if flag.startswith("precision "):
        return f"trained in {flag[10:]}; the papers trained in fp32"
    return FLAG_TEXT.get(flag, flag)


def most_withheld(states: Iterable[RowState]) -> str:
    """The most severe ``withheld`` verdict among ``states`` ("" when every row is
    comparable)."""
    keys = {s.withheld for s in states}
    return next((key for _, key in WITHHOLD_ORDER if key in keys), "")


def reading(state: RowState) -> RowState:
    """``state`` without its assumption-variant parts: an assumption variant run is another
    reading of the paper, compared with the paper beside the canonical number (the report's
    ledger); every other flag still withholds its verdict."""
    return replace(state, deviation=tuple(p for p in state.deviation
                                          if not p.startswith("variant:")))
