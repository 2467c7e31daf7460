"""Every declared alternative is live: for every spec under papers/ and every ``--variant
KEY=VALUE`` it allows (each ``alternatives:`` value), the variant's cells get another training
key (recipe, params, dataset options) or another evaluation config (eval settings) than the
canonical cells, and the changed value reaches the code: the method's observation
(``tests/liveness.py``), the evaluation's numbers or the loaded dataset differ. An alternative
that changes nothing would make the report say the assumption does not matter."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from fixtures_data import build_cuhk03_mat
from liveness import PARAMS, base_recipe, differences, get_in, observe, set_in, tiny_dataset
from project_specs import SPEC_FILES, project_spec

from reid_bench.core.hashing import stable_hash
from reid_bench.core.registry import METHODS
from reid_bench.data import load_dataset
from reid_bench.data.base import ReidDataset, Sample
from reid_bench.eval import evaluate_cell
from reid_bench.table.plan import Cell, cell_config, plan, training_key
from reid_bench.table.variants import apply_variant, available, parse_choice

SPECS = SPEC_FILES
CASES = [(str(p), choice) for p in SPECS for choice in available(project_spec(p))]


def test_cases_cover_every_spec():
    # Generated from the specs (26 tables when written) and the alternatives they declare.
    assert len(SPECS) >= 26 and len(CASES) >= 40


def _variant_cells(path: str, choice: str):
    spec = project_spec(path)
    new, part, affected = apply_variant(spec, choice)
    assert affected, f"--variant {choice} affects no cell of {path}"
    rows = {r.name: r for r in new.rows}
    pairs = []
    for c in plan(spec, seeds=1):
        if (c.row.name, c.dataset) in affected:
            v = Cell(rows[c.row.name], c.dataset, c.seed, c.tier, c.split, part)
            pairs.append((spec, c, new, v))
    assert pairs, f"--variant {choice} affects no planned cell of {path}"
    return pairs


def _train_key(spec, cell):
    cfg = cell_config(spec, cell)
    method = METHODS.get(cell.row.method)()
    params = method.Params.model_validate(cell.row.params)
    return stable_hash(training_key(cell, cfg, method, params)), cfg["eval"]


@pytest.mark.parametrize("path,choice", CASES, ids=[f"{p.split('papers/')[-1]}-{c}"
                                                     for p, c in CASES])
def test_alternative_changes_the_config(path, choice):
    block = choice.split(".")[0]
    for spec, cell, new, vcell in _variant_cells(path, choice):
        (ta, ea), (tb, eb) = _train_key(spec, cell), _train_key(new, vcell)
        if block == "eval":
            # Evaluation-only: same trained model, other evaluation.
            assert ta == tb and ea != eb, (cell.id, ea, eb)
        else:
            assert ta != tb, f"{cell.id}: --variant {choice} trains the canonical recipe again"


# ------------------------------------------------------------------ the value reaches the code

_OBS: dict[str, dict] = {}


def _observe(method, params, recipe, tiny, tmp_path, monkeypatch):
    key = hashlib.sha256(json.dumps([method, params, recipe], sort_keys=True,
                                    default=str).encode()).hexdigest()
    if key not in _OBS:
        _OBS[key] = observe(method, params, recipe, tiny, tmp_path, monkeypatch)
    return _OBS[key]


def _eval_dataset(root) -> ReidDataset:
    # Four query identities, three gallery matches each in another camera, four distractors:
    # rankings where AP definitions, distances and options can disagree.
    q = [Sample(str(root / f"q{i}"), 100 + i, 0) for i in range(4)]
    g = [Sample(str(root / f"g{i}_{j}"), 100 + i, 1) for i in range(4) for j in range(3)]
    g += [Sample(str(root / f"d{j}"), 0, 2) for j in range(4)]
    # Market's multiple-query images (protocol market_mq): three per query, same camera, so
    # average and max pooling give different query features.
    mq = [Sample(str(root / f"mq{i}_{j}"), 100 + i, 0) for i in range(4) for j in range(3)]
    return ReidDataset("tiny-eval", root, {"train": [], "query": q, "gallery": g,
                                           "mq_query": mq}, "tiny-eval")


def _embed(samples):
    gen = torch.Generator().manual_seed(7)
    table = torch.randn(64, 8, generator=gen)
    idx = [int(hashlib.sha256(s.path.encode()).hexdigest(), 16) % 64 for s in samples]
    return table[idx]


def _evaluate(ev: dict, ds) -> dict:
    return evaluate_cell(ev["protocol"], ds, _embed, distance=ev["distance"], ap=ev["ap"],
                         rerank=ev["rerank"], options=ev["options"]).metrics


def _load_with(name: str, options: dict, tmp_path):
    if name != "cuhk03":
        raise AssertionError(f"no fixture for dataset {name!r}: add its builder here to test "
                             "a dataset-option alternative")
    root = tmp_path / "data"
    if not root.exists():
        build_cuhk03_mat(root / "cuhk03" / "cuhk03_release" / "cuhk-03.mat",
                         [[(1, 2), (2, k % 2 + 1)] for k in range(20)])
    ds = load_dataset("cuhk03", root, **options)
    return {s: sorted((x.pid, x.camid, x.path) for x in v) for s, v in ds.splits.items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("alt-data"))


@pytest.mark.parametrize("path,choice", CASES, ids=[f"{p.split('papers/')[-1]}-{c}"
                                                     for p, c in CASES])
def test_alternative_reaches_the_code(path, choice, tiny, tmp_path, monkeypatch, own_cache):
    key, _, alt = parse_choice(choice)
    block, sub = key.split(".", 1)
    pairs = _variant_cells(path, choice)
    spec, cell, new, vcell = pairs[0]
    if block == "recipe":
        # The canonical and the alternative value in the method's tiny recipe (smoke-size
        # network); every other value as the tiny recipe has it.
        leaf = tuple(sub.split("."))
        seen = set()
        for _, c, _, v in pairs:
            m = c.row.method
            canon = get_in(cell_config(spec, c)["recipe"], leaf)
            other = get_in(cell_config(new, v)["recipe"], leaf)
            if (m, repr(canon), repr(other)) in seen:
                continue
            seen.add((m, repr(canon), repr(other)))
            cls = METHODS.get(m).Recipe
            base = base_recipe(m)
            ra = cls.model_validate(set_in(base, leaf, canon)).model_dump(mode="python")
            rb = cls.model_validate(set_in(base, leaf, other)).model_dump(mode="python")
            params = {**c.row.params, **PARAMS[m]}
            a = _observe(m, params, ra, tiny, tmp_path, monkeypatch)
            b = _observe(m, params, rb, tiny, tmp_path, monkeypatch)
            assert differences(a, b), f"{m}: recipe {sub} = {other!r} changes nothing"
    elif block == "params":
        m = cell.row.method
        base = base_recipe(m)
        pa = {**cell.row.params, **PARAMS[m]}
        pb = {**vcell.row.params, **PARAMS[m]}
        assert pa[sub] != pb[sub]
        a = _observe(m, pa, base, tiny, tmp_path, monkeypatch)
        b = _observe(m, pb, base, tiny, tmp_path, monkeypatch)
        assert differences(a, b), f"{m}: params {sub} = {alt!r} changes nothing in the code"
    elif block == "eval":
        ds = _eval_dataset(tmp_path)
        for _, c, _, v in pairs:
            ea, eb = cell_config(spec, c)["eval"], cell_config(new, v)["eval"]
            assert _evaluate(ea, ds) != _evaluate(eb, ds), (
                f"{c.id}: eval {sub} = {alt!r} gives the canonical numbers")
    else:  # a dataset loader option
        assert block == "options", choice
        da, db = cell_config(spec, cell)["dataset"], cell_config(new, vcell)["dataset"]
        assert _load_with(da["name"], da["options"], tmp_path) != \
            _load_with(db["name"], db["options"], tmp_path), (
            f"{cell.id}: dataset option {sub} = {alt!r} loads the canonical splits")
