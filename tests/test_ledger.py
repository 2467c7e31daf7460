"""Fidelity ledger and assumption variants: traced params/eval values, ``--variant`` runs (an
evaluation-only one reuses the trained model), the report's Assumptions section and stated /
assumed counts, and the concrete protocol fixes (Oxford5k AP, Market+500k subsets)."""

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from project_specs import PAPERS, project_spec, project_specs

from reid_bench.cli import main
from reid_bench.core.errors import DatasetError, SpecError
from reid_bench.core.registry import METHODS
from reid_bench.data import market1501_500k as m500
from reid_bench.eval.metrics import evaluate_relevance
from reid_bench.eval.ranking import relevance_from_lists
from reid_bench.report.build import build_report, table_view
from reid_bench.report.ledger import assumptions, counts, published_digits
from reid_bench.spec import load_spec
from reid_bench.store import results
from reid_bench.table.plan import plan
from reid_bench.table.variants import apply_variant, apply_variants, compose_variant, traced_values

# ------------------------------------------------------------------ Oxford5k official AP


def official_compute_ap(pos: set, amb: set, ranked: list) -> float:
    """Line by line the loop of the Oxford buildings ``compute_ap.cpp``."""
    old_recall, old_precision, ap, intersect, j = 0.0, 1.0, 0.0, 0, 0
    for item in ranked:
        if item in amb:
            continue
        if item in pos:
            intersect += 1
        recall = intersect / len(pos)
        precision = intersect / (j + 1.0)
        ap += (recall - old_recall) * ((old_precision + precision) / 2.0)
        old_recall, old_precision = recall, precision
        j += 1
    return ap


def test_oxford_ap_is_the_official_trapezoid_on_a_hand_computed_case():
    # Ranked: P N J P N P (J junk). By hand: 1/3·(1+1)/2 + 1/3·(1/2+2/3)/2 + 1/3·(1/2+3/5)/2
    # = 1/3 + 7/36 + 11/60 = 128/180; the mean-precision AP would be (1+2/3+3/5)/3 = 34/45.
    ranked = ["p0", "n0", "j0", "p1", "n1", "p2"]
    pos, junk = {"p0", "p1", "p2"}, {"j0"}
    assert official_compute_ap(pos, junk, ranked) == pytest.approx(128 / 180)
    rel = relevance_from_lists(1, 6, [[0, 3, 5]], [[2]])
    D = torch.arange(6, dtype=torch.float64)[None]  # gallery index = rank
    assert evaluate_relevance(D, rel, ap="market_matlab").mAP == pytest.approx(128 / 180)
    assert evaluate_relevance(D, rel, ap="standard").mAP == pytest.approx(34 / 45)


def test_every_oxford5k_column_scores_with_the_official_ap():
    specs = project_specs()
    cols = [(s.path, c) for s in specs for c in s.datasets.values()
            if c.eval.protocol == "oxford5k"]
    assert cols, "Verif-Identif Table VII has Oxford5k columns"
    for f, c in cols:
        assert c.eval.ap == "market_matlab", (f, c.label)


# ------------------------------------------------------------------ Market+500k subsets


def test_market500k_distractor_order_is_sorted_names_then_seeded(tmp_path, monkeypatch):
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    names = [f"{i:04d}_c1s1.jpg" for i in range(20)]
    for n in names[:12]:
        (folder / n).write_bytes(b"")
    for n in names[12:]:
        (folder / "sub" / n).write_bytes(b"")
    want = sorted([*names[:12], *(f"sub/{n}" for n in names[12:])])
    perm = np.random.default_rng(3).permutation(len(want))
    assert m500.distractor_order(folder, 3) == [want[i] for i in perm]
    # scandir order never decides: the same names in another directory order give one order
    monkeypatch.setattr(m500.os, "scandir", _reversed_scandir(m500.os.scandir))
    assert m500.distractor_order(folder, 3) == [want[i] for i in perm]
    assert m500.distractor_order(folder, 4) != m500.distractor_order(folder, 3)
    monkeypatch.setattr(m500, "CHUNK", 7)
    flat = [s.path for c in m500.distractor_chunks(folder, 3) for s in c]
    assert flat == [str(folder / want[i]) for i in perm]


def _reversed_scandir(real):
    class _It:
        def __init__(self, p):
            self.entries = list(real(p))[::-1]

        def __enter__(self):
            return iter(self.entries)

        def __exit__(self, *a):
            return False

    return _It


def test_market500k_short_distractor_folder_is_an_error_naming_both_counts():
    from reid_bench.data.base import ReidDataset, Sample
    from reid_bench.eval import evaluate_cell

    q = [Sample("q0", 1, 0)]
    g = [Sample("g0", 1, 1), Sample("g1", 2, 1)]
    dis = [Sample(f"d{i}", 0, 1) for i in range(5)]
    ds = ReidDataset("x", Path("."), {"train": [], "query": q, "gallery": g}, "fp",
                     streams={"distractors": lambda: iter([dis])})
    feats = lambda samples: torch.zeros(len(samples), 2)  # noqa: E731
    with pytest.raises(DatasetError, match="found 5, expected at least 8"):
        evaluate_cell("market500k", ds, feats, options={"gallery_sizes": [0, 8]})


def test_table6_subset_seed_is_written_in_the_spec():
    spec = project_spec("verif_identif/table6.yaml")
    assert spec.datasets["market500k"].options["sample_seed"] == 0
    assert any(t.key == "options.sample_seed" and t.assumed for t in traced_values(spec))


# ------------------------------------------------------------------ spec schema

SPEC = """\
paper: {id: demo, title: Demo, authors: [A], venue: V, year: 2020}
table: {id: table1, caption: tiny IDE table}
metrics: [rank1, mAP]
datasets:
  market:
    name: market1501
    eval:
      protocol: market
      ap: {value: standard, assumed: "AP not stated", replaces: "area under the PR curve", alternatives: [market_matlab]}
recipe:
  input:
    height: {value: 256, source: "Sec. 1"}
    width: {value: 128, source: "Sec. 1"}
  backbone:
    pretrained: {value: imagenet, source: "Sec. 1"}
  train:
    lr: {value: 0.01, source: "Sec. 2"}
    epochs: {value: 60, assumed: "not stated", alternatives: [30]}
smoke:
  recipe:
    input: {height: 32, width: 16}
    backbone: {pretrained: none, width: 0.25}
    train: {epochs: 1, lr: 0.05, batch_size: 32}
  dataset_options: {num_train_ids: 8, num_test_ids: 6, num_cams: 2, images_per_cam: 2,
                    queries_per_id: 1, mq_per_query: 0, num_distractors: 4, num_junk: 2}
rows:
  - name: A
    method: ide
    params: {backbone: resnet50, dropout: {value: 0.0, assumed: "none named", alternatives: [0.5]}}
    published: {market: {rank1: 70.0, mAP: 50.25}}
  - name: B
    method: ide
    params: {backbone: resnet50}
    published: {market: {rank1: 71.5, mAP: 51.0}}
  - name: Quoted
    runnable: false
    source: "[9]"
    published: {market: {rank1: 60.0, mAP: null}}
"""


def _write(tmp_path, text=SPEC) -> Path:
    p = tmp_path / "papers" / "demo" / "table1.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def test_traced_params_and_eval_become_plain_values_with_provenance(tmp_path):
    spec = load_spec(_write(tmp_path))
    assert spec.row("A").params == {"backbone": "resnet50", "dropout": 0.0}
    assert spec.datasets["market"].eval.ap == "standard"
    by_key = {(t.key, t.owner): t for t in traced_values(spec)}
    assert by_key[("params.dropout", "A")].alternatives == (0.5,)
    assert by_key[("eval.ap", "market")].replaces == "area under the PR curve"
    assert by_key[("recipe.train.lr", "")].source == "Sec. 2"
    # The recipe values the spec leaves out are the Recipe's defaults: assumed, and counted.
    from reid_bench.spec.defaults import untraced_leaves

    defaults = len({(u.key, repr(u.value)) for u in untraced_leaves(spec)})
    assert defaults > 0
    assert counts(spec) == {"recipe_stated": 4, "recipe_assumed": 1 + defaults,
                            "recipe_default": defaults, "other_assumed": 2,
                            "with_alternatives": 3}
    keys = {a.key: a for a in assumptions(spec)}
    assert keys["params.dropout"].where == "row A"
    assert keys["eval.ap"].where == "column market"
    assert published_digits(spec)[("market", "mAP")] == 2
    assert published_digits(spec)[("market", "rank1")] == 1


@pytest.mark.parametrize("bad, message", [
    ('lr: {value: 0.01, source: "Sec. 2"}',
     None),
    ('lr: {value: 0.01, source: "Sec. 2", alternatives: [0.1]}',
     "only an 'assumed' value may list alternatives"),
    ('lr: {value: 0.01, assumed: "x", alternatives: [0.01]}',
     "listed among its own alternatives"),
    ('lr: {value: 0.01, assumed: "x", alternatives: [-1.0]}',
     "alternative -1.0 does not validate"),
    ('lr: {value: 0.01, source: "x", replaces: "y"}',
     "'replaces' (the paper text an assumption stands in for) belongs to an assumed value"),
])
def test_alternatives_are_validated_where_they_go(tmp_path, bad, message):
    text = SPEC.replace('lr: {value: 0.01, source: "Sec. 2"}', bad)
    if message is None:
        load_spec(_write(tmp_path, text))
        return
    with pytest.raises(SpecError, match="table1.yaml:[0-9]+: recipe.train.lr") as e:
        load_spec(_write(tmp_path, text))
    assert message in str(e.value)


def test_param_alternative_must_be_a_valid_param(tmp_path):
    text = SPEC.replace("alternatives: [0.5]", "alternatives: [1.5]")
    with pytest.raises(SpecError, match=r"rows\.0\.params\.dropout\.alternatives"):
        load_spec(_write(tmp_path, text))


# ------------------------------------------------------------------ variants


def test_variant_applies_only_where_assumed_and_names_allowed_choices(tmp_path):
    spec = load_spec(_write(tmp_path))
    new, part, affected = apply_variant(spec, "params.dropout=0.5")
    assert part == "variant:params.dropout=0.5" and affected == {("A", "market")}
    assert new.row("A").params["dropout"] == 0.5 and spec.row("A").params["dropout"] == 0.0
    new, _, affected = apply_variant(spec, "eval.ap=market_matlab")
    assert new.datasets["market"].eval.ap == "market_matlab"
    assert affected == {("A", "market"), ("B", "market")}
    with pytest.raises(SpecError) as e:
        apply_variant(spec, "eval.ap=trapezoid")
    assert "Allowed: recipe.train.epochs=30, eval.ap=market_matlab, params.dropout=0.5" \
        in str(e.value)
    with pytest.raises(SpecError, match="'eval.distance' is not an assumed value"):
        apply_variant(spec, "eval.distance=cosine")
    with pytest.raises(SpecError, match="smoke recipe sets 'train.epochs'"):
        apply_variant(spec, "recipe.train.epochs=30", smoke=True)
    spec2, cells = apply_variants(spec, ["params.dropout=0.5", "eval.ap=market_matlab"],
                                  plan(spec, smoke=True))
    assert {c.row.name: c.variant for c in cells} == {
        "A": "variant:eval.ap=market_matlab;variant:params.dropout=0.5",
        "B": "variant:eval.ap=market_matlab"}
    assert compose_variant(["set:b=1", "variant:a=2"]) == "set:b=1;variant:a=2"


def test_lgeu_r_alternative_changes_only_the_ours_row():
    spec = project_spec("lgeu/table1.yaml")
    new, _, affected = apply_variant(spec, "params.reduction_mode=ratio", smoke=True)
    assert {r for r, _ in affected} == {"Ours"}
    assert new.row("Ours").params["reduction_mode"] == "ratio"
    assert new.row("Se-Unit").params == spec.row("Se-Unit").params


def test_eval_only_variant_reuses_the_trained_model_and_reports_beside_main(
        tmp_path, shared_data_root, monkeypatch):
    spec_path = _write(tmp_path)
    method = METHODS.get("ide")
    fits = []
    real_fit = method.fit

    def counting_fit(self, params, recipe, ctx):
        fits.append(params)
        return real_fit(self, params, recipe, ctx)

    monkeypatch.setattr(method, "fit", counting_fit)
    res_dir = tmp_path / "res"
    args = ["run", str(spec_path), "--smoke", "--rows", "B", "--results-dir", str(res_dir),
            "--data-root", str(shared_data_root), "--checkpoint-every", "0"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert len(fits) == 1
    out = CliRunner().invoke(main, args + ["--variant", "eval.ap=market_matlab"])
    assert out.exit_code == 0, out.output
    assert len(fits) == 1, "an evaluation-only variant must not train again"
    assert "reusing trained model" in out.output
    df = results.read_results(res_dir / "demo" / "table1.csv")
    main_row = df[df["variant"] == ""].iloc[0]
    var_row = df[df["variant"] == "variant:eval.ap=market_matlab"].iloc[0]
    assert var_row["ap"] == "market_matlab" and main_row["ap"] == "standard"
    assert var_row["train_hash"] == main_row["train_hash"]
    assert var_row["rank1"] == main_row["rank1"]  # same model, same ranking
    # The report keeps the variant out of the table's numbers and shows it beside them.
    view = table_view(load_spec(spec_path), res_dir, with_plots=False)
    # A smoke run: its numbers are the smoke block's (never the headline), and the variant
    # run stands beside them in the ledger, labelled with its tier.
    assert view.rows[1].numbers[("market", "mAP")].n == 0
    (smoke,) = view.others
    num = smoke.rows[1].numbers[("market", "mAP")]
    assert num.n == 1 and num.mean == pytest.approx(main_row["mAP"])
    (run,) = view.ledger.variants
    assert run.tier == "smoke" and "smoke tier" in run.label
    assert run.choices == [("eval.ap", "market_matlab")]
    got = {(x.row, x.metric): x for x in run.numbers}
    assert got[("B", "mAP")].value == pytest.approx(var_row["mAP"])
    assert got[("B", "mAP")].main == pytest.approx(main_row["mAP"])
    assert got[("B", "mAP")].verdict.key == "synthetic"
    page = build_report(res_dir, tmp_path / "rep", [str(spec_path)])
    html = (page.parent / "demo-table1.html").read_text()
    assert 'id="assumptions"' in html and 'data-variant="variant:eval.ap=market_matlab"' in html
    assert "“area under the PR curve”" in html
    assert "table1 caption" not in html and "Table 1 caption: <b>“tiny IDE table”</b>" in html
    index = (page.parent / "index.html").read_text()
    # 1 assumed value plus the Recipe defaults the toy spec leaves out (spec.defaults).
    assert re.search(r'data-ledger="4/(\d+)"', index) and int(re.search(r'data-ledger="4/(\d+)"', index)[1]) > 1


def test_report_index_counts_and_pages_list_assumptions_for_the_three_tables(tmp_path):
    """Fixture results (one smoke cell per table) for fmn/table5, ledf/table4, lgeu/table1."""
    res = tmp_path / "res"
    specs = [str(PAPERS / f) for f in ("fmn/table5.yaml", "ledf/table4.yaml", "lgeu/table1.yaml")]
    for f in specs:
        spec = project_spec(f)
        row = next(r for r in spec.rows if r.runnable)
        ds = next(iter(spec.datasets))
        for variant, val in (("", 50.0), (_first_alternative(spec), 55.0)):
            results.upsert_row(results.table_csv(res, spec.paper.id, spec.table.id), {
                "paper": spec.paper.id, "table": spec.table.id, "row": row.name, "dataset": ds,
                "seed": 0, "tier": "smoke", "variant": variant, "smoke": True, "status": "ok",
                "rank1": val, "mAP": val - 20, "synthetic": True, "wall_s": 1.0})
    out = build_report(res, tmp_path / "rep", specs)
    index = out.read_text()
    for f in specs:
        spec = project_spec(f)
        c = counts(spec)
        assert c["recipe_assumed"] > 0 and c["recipe_stated"] > 0
        assert f'data-ledger="{c["recipe_stated"]}/{c["recipe_assumed"]}"' in index
        html = (out.parent / f"{spec.paper.id}-{spec.table.id}.html").read_text()
        assert 'id="assumptions"' in html
        for a in assumptions(spec):
            assert f'data-key="{a.key}"' in html
        assert 'id="variants"' in html
    ledf = (out.parent / "ledf-table4.html").read_text()
    assert "recipe.pair_epoch" in ledf and "recipe.pair_batchnorm" in ledf
    assert ">75.03<" in ledf  # the published number as printed (two decimals)
    lgeu = (out.parent / "lgeu-table1.html").read_text()
    assert ">90.0<" in lgeu  # one decimal, as the paper prints it
    md = build_report(res, tmp_path / "md", specs, fmt="markdown").read_text()
    assert "**Assumptions**: recipe" in md and "**Variant " in md


def _first_alternative(spec) -> str:
    t = next(t for t in traced_values(spec) if t.alternatives)
    return compose_variant([f"variant:{t.key}={t.alternatives[0]}"])


def test_published_markdown_cites_the_caption():
    out = CliRunner().invoke(main, ["published", str(PAPERS / "fmn/table5.yaml"), "--format",
                                    "markdown"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("### Let Features Decide for Themselves")
    assert "— Table 5" in out.output
    assert "> Rank-1 accuracy and mAP results with different layer being masked" in out.output
    assert "| Pool1 | market | rank1 | 85.99 | True |" in out.output


# Every project spec validates and has recipe values in its ledger: test_spec.py's
# test_every_shipped_spec_validates.


def test_quote_check_finds_paraphrases_and_accepts_exact_quotes(tmp_path):
    from reid_bench.spec.quotes import check_quotes

    spec = load_spec(_write(tmp_path))
    text = ("3.1 Setup\nWe use SGD; Sec. 1 is a locator.\nThe mean average precision is the "
            "area un-\nder the PR curve.")
    bad = check_quotes(spec, text)
    assert bad == []  # sources are bare "Sec. N" locators; replaces is found across a hyphen
    spec2 = load_spec(_write(tmp_path, SPEC.replace('source: "Sec. 2"',
                                                    'source: "Sec. 2: lr is 0.01"')))
    assert check_quotes(spec2, text) == [("recipe.train.lr", "source", "lr is 0.01")]
    assert check_quotes(spec2, text + " The LR is\n0.01.") == []


def test_validate_with_paper_texts_fails_on_a_paraphrase(tmp_path):
    spec = _write(tmp_path, SPEC.replace('source: "Sec. 2"', 'source: "Sec. 2: lr is 0.01"'))
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "demo.txt").write_text("We train with SGD, the LR is 0.01, area under the PR curve.")
    ok = CliRunner().invoke(main, ["validate", str(spec), "--paper-texts", str(texts)])
    assert ok.exit_code == 0, ok.output
    (texts / "demo.txt").write_text("We train with SGD at 0.01; area under the PR curve.")
    bad = CliRunner().invoke(main, ["validate", str(spec), "--paper-texts", str(texts)])
    assert bad.exit_code == 1
    assert "recipe.train.lr: source not found in" in bad.output and "'lr is 0.01'" in bad.output
