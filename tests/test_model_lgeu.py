"""LGEU (Wang et al., ICONIP 2018): the unit against Eq. 1–4 written out by hand, the SE unit
against its own formula, parameter counts against hand counts, the specs against the paper's
text, and one end-to-end run of the Table 2 LGEU rows through the real runner."""

from pathlib import Path

import pytest
import torch
import yaml

from reid_bench.models._common import StandardRecipe
from reid_bench.models.lgeu import (
    LGEU,
    GlobalAvgPool,
    LGEUParams,
    LocalGlobalExtractionUnit,
    build_pooling,
    hidden_width,
    part_bounds,
)
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.table.plan import plan

PAPER = Path(__file__).resolve().parents[1] / "papers" / "lgeu"
SMOKE_RECIPE = StandardRecipe.model_validate({"backbone": {"pretrained": "none", "width": 0.25}})


def _unit(c=12, k=4, hidden=3, bias=False, seed=0):
    torch.manual_seed(seed)
    return LocalGlobalExtractionUnit(c, k, hidden, bias=bias)


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_gate_shapes_for_each_k(k):
    # ResNet-50's last map at 256x128 is 8x4: H = 8 rows split into K parts.
    unit = _unit(c=12, k=k)
    x = torch.randn(2, 12, 8, 4)
    local = unit.local_pool(x)
    v = unit.gates(local)
    assert local.shape == (2, 12, k)            # L ∈ R^{C×K} (Eq. 1)
    assert v.shape == (2, 12, k)                # V ∈ R^{C×K} (Eq. 2)
    assert ((v > 0) & (v < 1)).all()            # sigmoid gates
    assert unit.select(x).shape == x.shape      # S has X's shape (Eq. 3)
    assert unit(x).shape == (2, 12)             # Y ∈ R^C (Eq. 4)
    assert len(unit.branches) == k


def test_local_pool_is_eq1_written_out():
    unit, x = _unit(k=4), torch.randn(2, 12, 8, 4)
    H, W, K = 8, 4, 4
    delta = H // K
    want = torch.zeros(2, 12, K)
    for k in range(1, K + 1):                   # Eq. 1, 1-based as printed
        for i in range((k - 1) * delta + 1, k * delta + 1):
            for j in range(1, W + 1):
                want[:, :, k - 1] += x[:, :, i - 1, j - 1]
    want /= (W * H) / K
    torch.testing.assert_close(unit.local_pool(x), want)


def test_gates_are_eq2_with_each_branch_own_weights():
    unit = _unit(k=4, hidden=3)
    local = torch.randn(2, 12, 4)
    v = unit.gates(local)
    for k, br in enumerate(unit.branches):
        w1, w2 = br[0].weight, br[2].weight     # ω1^k: R×C, ω2^k: C×R
        assert w1.shape == (3, 12) and w2.shape == (12, 3)
        want = torch.sigmoid(torch.relu(local[:, :, k] @ w1.T) @ w2.T)
        torch.testing.assert_close(v[:, :, k], want)
    # Branches are not shared: part 0's gate ignores part 1's pooled vector.
    other = local.clone()
    other[:, :, 1] += 5.0
    v2 = unit.gates(other)
    torch.testing.assert_close(v2[:, :, 0], v[:, :, 0])
    assert not torch.allclose(v2[:, :, 1], v[:, :, 1])


def test_select_is_eq3_rows_scaled_by_their_part_gate():
    unit, x = _unit(k=4), torch.randn(2, 12, 8, 4)
    v = torch.rand(2, 12, 4)
    s = unit.select(x, gates=v)
    for i in range(1, 9):                       # S^{c,i,j} = X^{c,i,j} V^{c,⌈i/Δ⌉}, Δ = 2
        k = -(-i // 2)
        torch.testing.assert_close(s[:, :, i - 1], x[:, :, i - 1] * v[:, :, k - 1, None])
    torch.testing.assert_close(unit(x, gates=v), s.mean(dim=(2, 3)))  # Eq. 4


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_gates_fixed_to_one_give_part_average_pooling_which_is_gap(k):
    unit, x = _unit(k=k), torch.randn(3, 12, 8, 4)
    y = unit(x, gates=torch.ones(3, 12, k))
    torch.testing.assert_close(y, unit.local_pool(x).mean(dim=2))   # mean of the K part poolings
    torch.testing.assert_close(y, GlobalAvgPool()(x))               # = GAP for equal parts


def test_unit_is_gate_weighted_part_pooling():
    # Eq. 3 + 4 together: Y^c = (1/K) Σ_k V^{c,k} L^{c,k} when Δ = H/K.
    unit, x = _unit(k=4), torch.randn(2, 12, 8, 4)
    local = unit.local_pool(x)
    torch.testing.assert_close(unit(x), (unit.gates(local) * local).mean(dim=2))


def test_se_unit_is_squeeze_excitation_formula():
    pool = build_pooling(LGEUParams(unit="se", parts=4, reduction=4, reduction_mode="ratio"), 12)
    assert isinstance(pool, LocalGlobalExtractionUnit) and pool.parts == 1   # K is ignored
    x = torch.randn(2, 12, 8, 4)
    z = x.mean(dim=(2, 3))                                          # squeeze
    br = pool.branches[0]
    s = torch.sigmoid(torch.relu(z @ br[0].weight.T) @ br[2].weight.T)  # excitation, C/r = 3
    torch.testing.assert_close(pool(x), (x * s[:, :, None, None]).mean(dim=(2, 3)))


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_count_against_hand_count():
    C = 2048  # ResNet-50 res5
    # Paper's reading (R = hidden width 16): K · (R·C + C·R) = 4 · 2 · 16 · 2048.
    assert _count(build_pooling(LGEUParams(), C)) == 4 * 2 * 16 * 2048 == 262_144
    # SE-style reading (hidden C/R = 128): 4 · 2 · 128 · 2048.
    assert _count(build_pooling(LGEUParams(reduction_mode="ratio"), C)) == 2_097_152
    # With biases each branch adds R + C.
    assert _count(build_pooling(LGEUParams(gate_bias=True), C)) == 262_144 + 4 * (16 + 2048)
    # SE unit (K = 1, ratio 16) and the parameter-free baseline.
    assert _count(build_pooling(LGEUParams(unit="se", reduction_mode="ratio"), C)) == 524_288
    assert _count(build_pooling(LGEUParams(unit="gap"), C)) == 0
    assert _count(build_pooling(LGEUParams(parts=8), C)) == 8 * 2 * 16 * 2048


def test_hidden_width_and_part_bounds():
    assert hidden_width(2048, 16, "width") == 16 and hidden_width(2048, 16, "ratio") == 128
    assert part_bounds(8, 4) == [0, 2, 4, 6, 8]
    assert part_bounds(8, 1) == [0, 8]
    with pytest.raises(ValueError, match="height 3 into 4 parts"):
        part_bounds(3, 4)


def test_network_descriptor_train_and_eval_outputs():
    method = LGEU()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 128, 64)                     # → 4×2 res5 map at quarter width
    net = method.build(LGEUParams(), SMOKE_RECIPE, num_classes=5)
    assert net.train()(x).shape == (2, 5)              # logits for the softmax loss
    with torch.no_grad():
        f = net.eval()(x)
        assert f.shape == (2, net.backbone.feature_dim) == (2, 512)
        fmap = net.backbone.feature_map(x)
        assert fmap.shape[2:] == (4, 2)
        torch.testing.assert_close(f, net.pooling(fmap))
    base = method.build(LGEUParams(unit="gap"), SMOKE_RECIPE, num_classes=5).eval()
    with torch.no_grad():                              # the baseline is plain ResNet-50 GAP
        torch.testing.assert_close(base(x), base.backbone(x))


def test_specs_agree_with_the_papers_text():
    t1 = load_spec(PAPER / "table1.yaml")
    pub = {r.name: r.published for r in t1.rows}
    # Sec. 3.3: mAP 69.8/41.6/57.4 → 74.5 (+4.7) / 47.4 (+5.8) / 62.3 (+4.9); rank-1 +3.5/+4.2/+3.5.
    for col, d_map, d_r1 in (("market", 4.7, 3.5), ("cuhk03", 5.8, 4.2), ("duke", 4.9, 3.5)):
        assert pub["Ours"][col]["mAP"] - pub["Baseline"][col]["mAP"] == pytest.approx(d_map)
        assert pub["Ours"][col]["rank1"] - pub["Baseline"][col]["rank1"] == pytest.approx(d_r1)
    # The three Table 1 rows differ only in the unit, with the recipe shared.
    assert {r.params.get("unit") for r in t1.rows} == {"gap", "se", "lgeu"}
    assert all(not r.recipe for r in t1.rows)
    assert t1.datasets["cuhk03"].options == {"protocol": "new", "images": "detected"}
    for t in ("table1", "table2", "table3", "table4"):
        spec = load_spec(PAPER / f"{t}.yaml")
        assert all(c.eval.distance == "cosine" for c in spec.datasets.values())
        runnable = [r for r in spec.rows if r.runnable]
        assert all(r.method == "lgeu" for r in runnable)
        if t != "table1":   # Ours and Ours+RK: same training, re-ranking only at test
            assert [r.name for r in runnable] == ["Ours", "Ours+RK"]
            assert runnable[0].params == runnable[1].params and runnable[1].eval.rerank
    # Printed numbers that contradict the text are kept and carry a note.
    glad = load_spec(PAPER / "table2.yaml").row("GLAD [24]")
    assert glad.published["market"]["mAP"] == 79.3 and "73.9" in glad.note
    rk = load_spec(PAPER / "table3.yaml").row("Ours+RK")
    assert rk.published["cuhk03"]["rank1"] == 57.7 and "+10%" in rk.note


def test_table2_lgeu_rows_end_to_end(tmp_path, shared_data_root, monkeypatch):
    # Table 2's two runnable rows on the synthetic stand-in, 1 epoch: one shared training,
    # scored with and without re-ranking. The copy's same_as references resolve against the
    # project's papers/ in the working directory (spec/same_as.py): run from the repository.
    monkeypatch.chdir(PAPER.parents[1])
    data = yaml.safe_load((PAPER / "table2.yaml").read_text())
    data["smoke"]["recipe"]["train"].update(epochs=1, lr_steps=[])
    spec_path = tmp_path / "lgeu" / "table2.yaml"
    spec_path.parent.mkdir()
    spec_path.write_text(yaml.safe_dump(data, allow_unicode=True))
    spec = load_spec(spec_path)
    results = tmp_path / "results"
    runner = Runner(spec, RunOptions(results_dir=results, data_root=shared_data_root,
                                     smoke=True))
    summary = runner.run(plan(spec, rows=["Ours", "Ours+RK"], smoke=True))
    assert summary.ok and len(summary.done) == 2, summary.failed
    trained = [p for p in (results / "_artifacts" / "trained").iterdir() if p.is_dir()]
    assert len(trained) == 1


@pytest.mark.parametrize("head,modules", [("linear", 1), ("bottleneck", 5)])
def test_classifier_param_sets_the_head_not_the_descriptor(head, modules):
    """``classifier: linear`` (assumed) is one linear layer on Y; ``bottleneck`` puts FC 512 →
    BN → ReLU → dropout before it. The test descriptor is Y either way."""
    torch.manual_seed(0)
    x = torch.randn(3, 3, 128, 64)
    net = LGEU().build(LGEUParams(classifier=head), SMOKE_RECIPE, num_classes=5)
    heads = list(net.classifier) if isinstance(net.classifier, torch.nn.Sequential) \
        else [net.classifier]
    assert len(heads) == modules and heads[-1].out_features == 5
    assert net.train()(x).shape == (3, 5)
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(net(x), net.pooling(net.backbone.feature_map(x)))
