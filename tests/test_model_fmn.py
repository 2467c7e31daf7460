"""FMN (Ding et al. 2017): mask shapes (Table 5), Eq. 1-3 mask and mixing, Eq. 5 ranking loss,
Eq. 6 descriptor, frozen GRN in stage 2 and one shared stage-1 GRN, plus an end-to-end run of
Table 5 through the real runner."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from reid_bench.data.base import load_dataset
from reid_bench.engine.artifacts import ArtifactCache
from reid_bench.engine.method import CellContext
from reid_bench.models.fmn import FMN, FMNParams, FMNRecipe, fmn_mask, fuse, mix, ranking_loss

TINY = {"input": {"height": 64, "width": 32, "resize": [72, 36], "random_crop": True},
        "backbone": {"pretrained": "none", "width": 0.25}}
# Table 5 "mask size" for the paper's 224x224 input.
TABLE5_MASK = {"pool1": (56, 56), "res2": (56, 56), "res3": (28, 28), "res4": (14, 14)}


def _recipe(**over) -> FMNRecipe:
    data = {**TINY, **over}
    return FMNRecipe.model_validate(data)


@pytest.mark.parametrize("layer", ["pool1", "res2", "res3", "res4"])
def test_mask_shape_positivity_and_hadamard_mixing(layer):
    torch.manual_seed(0)
    recipe = _recipe(input={"height": 224, "width": 224})
    net = FMN().build(FMNParams(mask_layer=layer), recipe, num_classes=5).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        out = net.branches(x)
    h, w = TABLE5_MASK[layer]
    assert out.mask.shape == (2, h, w)
    assert out.f.shape[2:] == (h, w)
    assert out.f.shape[1] == net.grn.backbone.stage_channels[layer]
    # exp(ReLU(.)) >= 1 > 0; Eq. 1-2 recomputed from g and the MN weights (column-major).
    assert torch.all(out.mask >= 1)
    pre = F.relu(out.g @ net.mn.weight.T)
    assert torch.allclose(out.mask, torch.exp(pre.reshape(2, w, h).transpose(1, 2)))
    # Eq. 3: every channel re-weighted by the same mask.
    for c in (0, out.f.shape[1] - 1):
        assert torch.allclose(out.o[:, c], out.f[:, c] * out.mask)
    # The LAN continues with the stages above the masked layer: l has the res5 width.
    assert out.l.shape == out.g.shape == (2, net.grn.backbone.feature_dim)


def test_mask_reshape_is_column_major_and_exp():
    h, w = 3, 2
    m_prime = torch.arange(h * w, dtype=torch.float32)[None] / 10  # m'_k = k/10
    m = fmn_mask(m_prime, h, w)
    for k in range(h * w):  # Eq. 2 (0-based): i = k mod h, j = k // h
        assert m[0, k % h, k // h].item() == pytest.approx(math.exp(k / 10))


def test_mask_is_one_where_the_transform_is_negative():
    torch.manual_seed(0)
    net = FMN().build(FMNParams(mask_layer="res4"), _recipe(), num_classes=3).eval()
    with torch.no_grad():
        net.mn.weight.fill_(-1.0)  # g >= 0 (pooled ReLU) → Wᵀg <= 0 → ReLU 0 → exp 1
        out = net.branches(torch.randn(2, 3, 64, 32))
    assert torch.equal(out.mask, torch.ones_like(out.mask))
    assert torch.allclose(out.o, out.f)


def test_mix_by_hand():
    f = torch.tensor([[[[1., 2.], [3., 4.]], [[-1., 0.], [5., 6.]]]])  # 1×2×2×2
    m = torch.tensor([[[2., 1.], [0.5, 3.]]])
    expected = torch.tensor([[[[2., 2.], [1.5, 12.]], [[-2., 0.], [2.5, 18.]]]])
    assert torch.equal(mix(f, m), expected)
    with pytest.raises(ValueError):
        mix(f, torch.ones(1, 3, 2))


def test_ranking_loss_by_hand():
    # Two classes; logits chosen so the softmax probabilities are exact.
    lg = torch.log(torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]))
    ll = torch.log(torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])).requires_grad_()
    t = torch.tensor([0, 1, 0])
    # max(0, pG - pL + m), m = 0.1: 0.9-0.7+0.1 = 0.3; 0.5-0.8+0.1 -> 0; 0.2-0.4+0.1 -> 0
    loss = ranking_loss(lg, ll, t, margin=0.1)
    assert loss.item() == pytest.approx(0.3 / 3, abs=1e-6)
    assert ranking_loss(lg, ll, t, margin=0.5).item() == pytest.approx(
        (0.7 + 0.2 + 0.3) / 3, abs=1e-6)
    loss.backward()
    # Only the active sample pushes: d/dlogit_t of -p_t/3 = -p_t(1-p_t)/3 = -0.07.
    assert ll.grad[0, 0].item() == pytest.approx(-0.7 * 0.3 / 3, abs=1e-6)
    assert torch.all(ll.grad[1:] == 0)


def test_eq6_descriptor_by_hand_and_from_the_model():
    g = torch.tensor([[3., 4.]])
    l = torch.tensor([[0., 0., 2.]])  # noqa: E741 (Eq. 6 notation)
    assert torch.allclose(fuse(g, l, 0.5), torch.tensor([[0.3, 0.4, 0., 0., 0.5]]))
    assert torch.allclose(fuse(g, l, 0.25), torch.tensor([[0.15, 0.2, 0., 0., 0.75]]))

    torch.manual_seed(0)
    method = FMN()
    net = method.build(FMNParams(), _recipe(), num_classes=4).eval()
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        out = net.branches(x)
        d = net(x)  # eval forward = fused, alpha 0.5
        dims = {k: method.features(net, FMNParams(descriptor=k, alpha=0.3))(x)
                for k in ("fused", "grn", "lan")}
    dim = net.grn.backbone.feature_dim  # Table 1 "dim": 2048 / 2048 / 4096 at full width
    assert d.shape == (3, 2 * dim)
    assert torch.allclose(d, torch.cat([0.5 * out.g / out.g.norm(dim=1, keepdim=True),
                                        0.5 * out.l / out.l.norm(dim=1, keepdim=True)], 1),
                          atol=1e-6)
    assert torch.allclose(dims["fused"][:, :dim].norm(dim=1), torch.full((3,), 0.3))
    assert torch.allclose(dims["grn"], F.normalize(out.g, dim=1), atol=1e-6)
    assert torch.allclose(dims["lan"], F.normalize(out.l, dim=1), atol=1e-6)
    assert FMN.eval_only_params == {"descriptor", "alpha"}


def _tiny_ctx(root: Path, tmp_path: Path) -> CellContext:
    ds = load_dataset("synthetic", root, num_train_ids=8, num_test_ids=4, num_cams=2,
                      images_per_cam=2, queries_per_id=1, mq_per_query=0, num_distractors=0,
                      num_junk=0)
    ctx = CellContext(dataset=ds, device=torch.device("cpu"), seed=0,
                      cache=ArtifactCache(tmp_path / "cache"), work_dir=tmp_path / "work")
    ctx.work_dir.mkdir()
    return ctx


def test_stage2_keeps_grn_frozen_and_stage1_is_trained_once(shared_data_root, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="reid_bench")
    ctx = _tiny_ctx(shared_data_root, tmp_path)
    recipe = _recipe(stage1={"epochs": 1, "batch_size": 16, "lr": 0.05},
                     stage2={"epochs": 1, "batch_size": 16, "lr": 0.05})
    method = FMN()
    model = method.fit(FMNParams(mask_layer="res4"), recipe, ctx)
    folders = list((tmp_path / "cache" / "fmn_grn").glob("*/grn.pt"))
    assert len(folders) == 1
    grn_state = torch.load(folders[0], weights_only=True)
    # Stage 2 trained MN/LAN but left every GRN tensor (weights and BN statistics) as stage 1
    # saved it; the GRN parameters got no gradient.
    for k, v in model.grn.state_dict().items():
        assert torch.equal(v, grn_state[k]), k
    assert all(p.grad is None and not p.requires_grad for p in model.grn.parameters())
    assert any(p.grad is not None for p in model.lan.parameters())
    assert sum("[fmn-grn] epoch" in m for m in caplog.messages) == 1

    # Another masked layer: the cached GRN is reused, not retrained.
    model2 = method.fit(FMNParams(mask_layer="pool1"), recipe, ctx)
    assert sum("[fmn-grn] epoch" in m for m in caplog.messages) == 1
    assert len(list((tmp_path / "cache" / "fmn_grn").glob("*/config.json"))) == 1
    assert torch.equal(model2.grn.classifier.weight, model.grn.classifier.weight)
    assert sum("[fmn-pool1] epoch" in m for m in caplog.messages) == 1


def test_table5_end_to_end_through_the_runner(repo_root, shared_data_root, tmp_path, caplog,
                                              monkeypatch):
    # The copy's same_as references resolve against the project's papers/ in the working
    # directory (spec/same_as.py): run from the repository, wherever pytest was started.
    monkeypatch.chdir(repo_root)
    caplog.set_level(logging.INFO, logger="reid_bench")
    from reid_bench.run.runner import Runner, RunOptions
    from reid_bench.spec import load_spec
    from reid_bench.table.plan import plan

    data = yaml.safe_load((repo_root / "papers/fmn/table5.yaml").read_text())
    data["smoke"]["recipe"]["stage1"].update(epochs=1, lr_steps=[])
    data["smoke"]["recipe"]["stage2"].update(epochs=1, lr_steps=[])
    data["smoke"]["dataset_options"] = {"num_train_ids": 8, "num_test_ids": 6, "num_cams": 2,
                                        "images_per_cam": 2, "queries_per_id": 1,
                                        "mq_per_query": 0, "num_distractors": 4,
                                        "num_junk": 0}
    spec_path = tmp_path / "fmn" / "table5.yaml"
    spec_path.parent.mkdir()
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(spec_path)
    cells = plan(spec, rows=["Pool1", "Res4"], smoke=True)
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "results",
                                     data_root=shared_data_root, smoke=True))
    summary = runner.run(cells)
    logs = caplog.messages
    assert summary.ok, summary.failed
    assert len(summary.done) == 2
    assert sum("[fmn-grn] epoch" in m for m in logs) == 1  # Table 5 trains GRN once
    assert len(list((tmp_path / "results" / "_artifacts" / "fmn_grn").glob("*/config.json"))) == 1
