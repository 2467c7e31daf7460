"""Every flag of a number shows in every view that shows the number (issue 28).

For every combination of tier × variant × subset × edited × stale × data changed × precision
(``itertools.product``, 4 × 3 × 2 × 2 × 2 × 2 × 2 = 384), one results row is written with the
project's writers (no training). The combinations share one table: each (edited, stale, data,
precision) is one spec row, each (tier, variant, subset) one block of it, so one render covers
them all. The expected flags, block and verdict of each combination are worked out here from
the combination alone, not by ``reid_bench.table.rowstate``, and checked in the HTML page (headline,
other results, ledger), the index, markdown, LaTeX, JSON, the figures, ``status`` and
``compare``: each flag appears wherever the number does, only full-tier canonical numbers are
the headline, and no non-comparable number carries reproduced / better / worse.
"""

from __future__ import annotations

import html as htmlmod
import itertools
import re
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from reid_bench.core import atomic
from reid_bench.report import aggregate
from reid_bench.report.latex import render_latex
from reid_bench.report.render import html_pages, markdown
from reid_bench.report.summary import summary
from reid_bench.spec import load_spec
from reid_bench.store.compare import compare
from reid_bench.store.results import COLUMNS, cell_dir, cell_id, table_csv, write_cell_json
from reid_bench.store.row_digest import row_digest
from reid_bench.table.overrides import compose_variant
from reid_bench.table.rowstate import RowStates
from reid_bench.table.status import table_status

TIERS = ("full", "smoke", "shakedown", "smoke_recipe")
VARIANTS = {"": [], "set": ["set:train.lr=0.02"], "variant": ["variant:recipe.train.epochs=30"]}
SUBSET = (False, True)
EDITED = (False, True)
STALE = (False, True)
DATA_CHANGED = (False, True)
PRECISION = ("fp32", "bf16")
COMBOS = list(itertools.product(TIERS, VARIANTS, SUBSET, EDITED, STALE, DATA_CHANGED,
                                PRECISION))
# One spec row per (edited, stale, data changed, precision).
ROW_KINDS = list(itertools.product(EDITED, STALE, DATA_CHANGED, PRECISION))
PUBLISHED, OURS = 70.0, 70.5  # within the band: the comparison would read "reproduced"
COMPARISONS = ("reproduced", "better", "worse")
FP_NOW, FP_OLD = "fp-now", "fp-old"

SPEC = """\
paper: {id: rsx, title: Row State Fixture, authors: [A], venue: V, year: 2024}
table: {id: table1, caption: every flag combination}
metrics: [rank1]
datasets:
  market: {name: market1501, label: Market, eval: {protocol: market, ap: standard}}
recipe:
  train:
    lr: {value: 0.01, source: "Sec. 2"}
    epochs: {value: 60, assumed: "not stated", alternatives: [30]}
rows:
"""


def _row_name(kind: tuple) -> str:
    edited, stale, data, precision = kind
    return "R-" + ("".join(c for c, on in (("e", edited), ("s", stale), ("d", data)) if on) or "o") \
        + ("-" + precision)


def expected_flags(tier, var, subset, edited, stale, data, precision) -> list[str]:
    """The flags a number of this combination must carry, in display order."""
    on = [("synthetic", tier == "smoke"), ("shakedown", tier == "shakedown"),
          ("smoke recipe", tier == "smoke_recipe"), ("subset", subset),
          ("variant", var != ""), ("edited", edited), ("stale", stale),
          ("data changed", data)]
    return [f for f, x in on if x] + (["precision bf16"] if precision == "bf16" else [])


def variant_of(var: str, subset: bool) -> str:
    return compose_variant(VARIANTS[var] + (["subset"] if subset else []))


def where(tier, var, subset) -> str:
    """headline | ledger | other: where the page shows this combination's number."""
    if tier == "full" and var == "" and not subset:
        return "headline"
    return "ledger" if var == "variant" else "other"


def comparable(flags: list[str], place: str) -> bool:
    """May the number carry reproduced / better / worse? Only with no flag but precision (in
    the ledger an assumption variant's own reading is the point of it)."""
    allowed = {"precision bf16"} | ({"variant"} if place == "ledger" else set())
    return set(flags) <= allowed


def _write(root: Path) -> tuple[object, Path, dict]:
    spec_file = root / "papers" / "rsx" / "table1.yaml"
    spec_file.parent.mkdir(parents=True)
    rows = "".join(f"  - {{name: {_row_name(k)}, method: ide, params: {{backbone: resnet50}}, "
                   f"published: {{market: {{rank1: {PUBLISHED}}}}}}}\n" for k in ROW_KINDS)
    spec_file.write_text(textwrap.dedent(SPEC) + rows)
    spec = load_spec(spec_file)
    res = root / "results"
    states = RowStates(spec)
    recs, expect = [], {}
    for tier, var, subset, edited, stale, data, precision in COMBOS:
        name = _row_name((edited, stale, data, precision))
        variant = variant_of(var, subset)
        synthetic = tier in ("smoke", "shakedown")
        rec = {"paper": "rsx", "table": "table1", "row": name, "dataset": "market",
               "split": None, "seed": 0, "tier": tier, "variant": variant,
               "smoke": tier == "smoke", "status": "ok", "rank1": OURS, "method": "ide",
               "protocol": "market", "ap": "standard", "distance": "euclidean",
               "dataset_name": "synthetic" if synthetic else "market1501",
               "synthetic": synthetic, "git_commit": "fixture", "git_dirty": False,
               "spec_hash": spec.spec_hash,
               "dataset_fingerprint": FP_OLD if data else FP_NOW, "device": "cpu",
               "device_name": "fixture", "torch": "x", "wall_s": 1.0, "precision": precision,
               "subset": subset, "cell_id": cell_id(name, "market", 0, tier, None, variant),
               "overrides": '{"train.lr": 0.02}' if var == "set" else None,
               "shakedown_steps": 1 if tier == "shakedown" else None,
               "max_batch": 4 if tier == "shakedown" else None,
               "pretrained": "none" if tier == "shakedown" else "imagenet"}
        current = states.current_config_hash(rec)
        # Every cell is re-plannable (subset, --set, assumption variant, shakedown included):
        # else a changed recipe would go unseen for it.
        assert current is not None, rec
        rec["config_hash"] = "0" * 16 if stale else current
        rec["row_digest"] = row_digest({c: rec.get(c) for c in COLUMNS})
        if edited:
            rec["wall_s"] = 99.0  # changed after the digest was taken: a hand edit
        recs.append(rec)
        write_cell_json(cell_dir(res, "rsx", "table1") / f"{rec['cell_id']}.json",
                        {"cmc": [0.705, 0.8, 0.9]})
        flags = expected_flags(tier, var, subset, edited, stale, data, precision)
        expect[(name, tier, variant)] = (flags, where(tier, var, subset))
    df = pd.DataFrame(recs)
    atomic.write_text(table_csv(res, "rsx", "table1"),
                      df.reindex(columns=COLUMNS).to_csv(index=False))
    return spec, res, expect


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("rowstate")
    spec, res, expect = _write(root)
    fps = {"market1501": FP_NOW, "synthetic": FP_NOW}
    views, broken = aggregate.collect(res, [spec.path], data_fingerprints=fps)
    assert not broken
    out = {"spec": spec, "res": res, "expect": expect, "view": views[0],
           "html": html_pages(views, broken, "T"), "md": markdown(views, broken, "T"),
           "tex": render_latex(views, broken, "T"), "json": summary(views, broken, "T")}
    return out


def test_the_combinations_are_generated_and_all_covered(rendered):
    assert len(COMBOS) == 4 * 3 * 2 * 2 * 2 * 2 * 2 == 384 == len(rendered["expect"])
    assert sum(1 for _, w in rendered["expect"].values() if w == "headline") == 16


def _cell_flags(td: str) -> list[str]:
    return [htmlmod.unescape(f) for f in re.findall(r'data-flag="([^"]+)"', td)]


def test_html_page(rendered):
    v, expect = rendered["view"], rendered["expect"]
    page = rendered["html"][v.page]
    main = page[page.index('<table id="results">'):page.index("</table>",
                                                              page.index('id="results"'))]
    others = {}
    for part in page.split('<div class="other" ')[1:]:
        m = re.match(r'data-tier="([^"]*)" data-variant="([^"]*)">', part)
        others[(m.group(1), htmlmod.unescape(m.group(2)))] = part[:part.index("</table>")]
    seen = 0
    for (name, tier, variant), (flags, place) in expect.items():
        if place == "ledger":
            continue  # test_ledger
        where_html = main if place == "headline" else others[(tier, variant)]
        td = re.search(rf'<td class="num ours" data-row="{name}" data-dataset="market" '
                       rf'data-metric="rank1"[^>]*>(.*?)</td>\s*<td class="num">[^<]*</td>\s*'
                       rf'<td class="name[^"]*">\s*<span class="badge [^"]*" '
                       rf'data-verdict="([^"]+)"', where_html, re.S)
        assert td, (name, tier, variant)
        assert _cell_flags(td.group(1)) == flags, (name, tier, variant, place)
        if not comparable(flags, place):
            assert td.group(2) not in COMPARISONS, (name, tier, variant, td.group(2))
        else:
            assert td.group(2) == "reproduced"
        seen += 1
    # The headline shows full-tier canonical numbers only: one per spec row.
    assert len(re.findall(r'<td class="num ours"', main)) == 16
    assert seen == 384 - sum(1 for _, w in expect.values() if w == "ledger")


def test_ledger(rendered):
    v, expect = rendered["view"], rendered["expect"]
    page = rendered["html"][v.page]
    runs = {(r.tier, r.variant): r for r in v.ledger.variants}
    md = rendered["md"]
    n = 0
    for (name, tier, variant), (flags, place) in expect.items():
        if place != "ledger":
            continue
        run = runs[(tier, variant)]
        x = next(x for x in run.numbers if x.row == name)
        assert x.flags == flags
        assert (x.verdict.key in COMPARISONS) == comparable(flags, place), (name, variant)
        sec = page[page.index(f'<h3 data-variant="{variant}" data-tier="{tier}">'):]
        sec = sec[:sec.index("</table>")]
        tr = re.search(rf'<tr data-row="{name}" data-metric="rank1">(.*?)</tr>', sec, re.S)
        assert _cell_flags(tr.group(1)) == flags
        mdsec = md[md.index(f"**Variant {run.label}**"):]
        line = next(ln for ln in mdsec.splitlines() if ln.startswith(f"| {name} |"))
        assert f"[{', '.join(flags)}]" in line
        n += 1
    assert n == 4 * 2 * 16  # tiers × subset × row kinds


def test_markdown(rendered):
    md, expect, v = rendered["md"], rendered["expect"], rendered["view"]
    head = md[:md.index("**Other results")]
    for (name, tier, variant), (flags, place) in expect.items():
        if place == "ledger":
            continue
        if place == "headline":
            line = next(ln for ln in head.splitlines() if ln.startswith(f"| {name} "))
        else:
            o = next(o for o in v.others if (o.tier, o.variant) == (tier, variant))
            sec = md[md.index(f"**Other results: {o.title}**"):]
            sec = sec[:sec.index("\n\n**", 5)]
            line = next(ln for ln in sec.splitlines() if ln.startswith(f"| {name} |"))
        assert f"[{', '.join(flags)}]" in line if flags else "[" not in line, (line, flags)
        verdict = line.rsplit("|", 2)[-2]
        if not comparable(flags, place):
            assert not re.search(r"[✓▲▼] (reproduced|better|worse)", verdict), line


def test_latex(rendered):
    from reid_bench.report.latex import MARKS, flag_mark

    tex, expect = rendered["tex"], rendered["expect"]
    for (name, _tier, _variant), (flags, place) in expect.items():
        if place != "headline":
            # The LaTeX table is the paper's table: no other block's number is in it.
            continue
        line = next(ln for ln in tex.splitlines() if ln.startswith(name + " "))
        marks = ",".join(flag_mark(f) for f in flags)
        assert (rf"\textsuperscript{{{marks}}}" in line) if flags else "textsuperscript" not in \
            line, (line, flags)
        if not comparable(flags, place):
            assert not any(MARKS[k] in line for k in COMPARISONS), line
    # Every mark is explained under the table.
    for f in rendered["view"].number_flags:
        assert rf"\textsuperscript{{{flag_mark(f)}}}" in tex.split(r"\bottomrule")[1]
    assert sum(ln.startswith("R-") for ln in tex.splitlines()) == 16


def test_json(rendered):
    js, expect = rendered["json"]["tables"][0], rendered["expect"]
    got = {(n["row"], "full", ""): n for n in js["numbers"]}
    for o in js["other_results"]:
        got.update({(n["row"], o["tier"], o["variant"]): n for n in o["numbers"]})
    for run in js["ledger"]["variants"]:
        got.update({(n["row"], run["tier"], run["variant"]): n for n in run["numbers"]})
    for key, (flags, place) in expect.items():
        n = got[key]
        assert n["flags"] == flags, key
        if not comparable(flags, place):
            assert n["verdict"] not in COMPARISONS, key
    assert js["synthetic"] is False  # the headline is never a smoke or shakedown number


def test_figures(rendered):
    v, expect = rendered["view"], rendered["expect"]
    assert v.plots
    headline = {name: flags for (name, _, _), (flags, place) in expect.items()
                if place == "headline"}
    for p in v.plots:
        assert p.flags == v.number_flags
        text = htmlmod.unescape(" ".join(re.findall(r">([^<>]+)</text>", p.svg)
                                         + re.findall(r"<!-- (.*?) -->", p.svg)))
        for name, flags in headline.items():
            if flags and p.kind == "bars":
                assert ", ".join(flags) in text, (p.kind, name, flags)
            if flags and p.kind == "cmc":
                assert f"{name} [{', '.join(flags)}]" in text, (p.kind, name, flags)


def test_index(rendered):
    v = rendered["view"]
    idx = rendered["html"]["index.html"]
    row = idx[idx.index(f'<tr data-page="{v.page}">'):]
    row = row[:row.index("</tr>")]
    for f in v.number_flags:
        assert f'data-flag="{f}"' in row
    expect = rendered["expect"]
    for o in v.others:
        block = re.search(rf'data-block="{re.escape(htmlmod.escape(o.title))}"[^>]*>(.*?)'
                          r"</span>(?:<br>|</td>)", row, re.S)
        assert block, o.title
        want = sorted({f for (_, t, var), (flags, _) in expect.items()
                       if (t, var) == (o.tier, o.variant) for f in flags})
        assert sorted(_cell_flags(block.group(1))) == want, o.title
    # The headline counts are the canonical full-tier rows only.
    assert sum(v.counts.values()) == 16


class _DataNow:
    """The data every cell would run on now (``finished.DataFingerprints``' interface)."""

    problems: dict = {}

    def of_config(self, config):
        return FP_NOW


def test_status(rendered):
    spec, res, expect = rendered["spec"], rendered["res"], rendered["expect"]
    for tier in TIERS:
        got = {s.row: s.state
               for s in table_status(spec, res, tier=tier, fingerprints=_DataNow())}
        for (name, t, variant), (flags, _) in expect.items():
            if t == tier and variant == "":
                # A shakedown's stand-in is generated from the run's flags: status checks it
                # against the row's own fingerprint (status.py, _Checker.data_now).
                data = "data changed" in flags and tier != "shakedown"
                want = "stale" if "stale" in flags else "data_changed" if data else "done"
                assert got[name] == want, (name, tier)


def test_compare(rendered):
    spec, res, expect = rendered["spec"], rendered["res"], rendered["expect"]
    df = compare(res, res, {("rsx", "table1"): spec})
    got = {(r["row"], r["tier"], r["variant"]): r["flags_a"] for r in df.to_dict("records")}
    for key, (flags, _) in expect.items():
        # compare has no current data fingerprints: data is not checked there.
        assert got[key] == ", ".join(f for f in flags if f != "data changed"), key
