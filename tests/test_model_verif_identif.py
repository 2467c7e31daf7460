"""Verif-Identif (Zheng et al., TOMM 2017): Square Layer, head shapes at the paper's input sizes,
the Sec. III-F loss weighting, the pair ratio schedule, the I/V/I+V/contrastive switches, and one
end-to-end smoke row through the real runner."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pydantic import ValidationError

from reid_bench.core.registry import METHODS
from reid_bench.data.samplers import PairRatioSchedule
from reid_bench.models.verif_identif import (
    LossRecipe,
    ScheduledPairSampler,
    VerifIdentif,
    VerifIdentifParams,
    VerifIdentifRecipe,
    contrastive_loss,
    pair_descriptors,
    pair_loss,
    square_layer,
)
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.table.plan import plan

ROOT = Path(__file__).resolve().parents[1]


def _build(backbone, width=0.25, losses=("identification", "verification"), num_classes=751,
           pooling="default"):
    params = VerifIdentifParams(backbone=backbone, losses=losses, pooling=pooling)
    recipe = VerifIdentifRecipe.model_validate({"backbone": {"pretrained": "none",
                                                             "width": width}})
    torch.manual_seed(0)
    return VerifIdentif().build(params, recipe, num_classes)


def test_registered():
    assert METHODS.get("verif_identif") is VerifIdentif


def test_square_layer_is_elementwise_squared_difference():
    f1 = torch.tensor([[1.0, -2.0, 0.5]])
    f2 = torch.tensor([[3.0, 1.0, 0.5]])
    assert torch.equal(square_layer(f1, f2), torch.tensor([[4.0, 9.0, 0.0]]))
    # Symmetric in its inputs, as the verification label is.
    assert torch.equal(square_layer(f2, f1), square_layer(f1, f2))


# Sec. III-F input sizes: 227 for CaffeNet, 224 for VGG16/ResNet-50. Quarter width keeps these
# fast; f is 4096·0.25 (fc7) or 2048·0.25 (pooled res5).
@pytest.mark.parametrize("backbone,size,dim", [("caffenet", 227, 1024), ("vgg16", 224, 1024),
                                               ("resnet50", 224, 512)])
def test_head_shapes_at_paper_input_sizes(backbone, size, dim):
    net = _build(backbone).train()
    with torch.no_grad():
        f = net(torch.randn(4, 3, size, size))
        out = net.heads(f[:2], f[2:])
    assert f.shape == (4, dim)
    assert out["id1"].shape == out["id2"].shape == (2, 751)  # 751 Market training ids
    assert out["verif"].shape == (2, 2)
    assert net.identity.kernel_size == net.verification.kernel_size == (1, 1)
    assert net.verification.out_channels == 2


def test_resnet50_full_width_descriptor_is_2048_and_l2_normalised():
    net = _build("resnet50", width=1.0).eval()
    with torch.no_grad():
        d = net(torch.randn(2, 3, 224, 224))
    assert d.shape == (2, 2048)
    assert torch.allclose(d.norm(dim=1), torch.ones(2), atol=1e-5)


def test_mac_pooling_takes_any_image_size():
    net = _build("caffenet", pooling="mac", num_classes=10).eval()
    with torch.no_grad():
        a = net(torch.randn(1, 3, 227, 227))
        b = net(torch.randn(1, 3, 300, 180))
    assert a.shape == b.shape == (1, 64)  # conv5 channels 256·0.25; fc6/fc7 unused
    assert net.identity.in_channels == net.verification.in_channels == 64


def test_loss_weighting_matches_hand_computation():
    net = _build("resnet50", num_classes=5).eval()  # eval: dropout off, heads deterministic
    with torch.no_grad():
        for conv in (net.identity, net.verification):
            conv.weight.normal_()
            conv.bias.normal_()
    f1, f2 = torch.randn(3, net.feature_dim), torch.randn(3, net.feature_dim)
    y1, y2, same = torch.tensor([0, 1, 2]), torch.tensor([0, 3, 4]), torch.tensor([1, 0, 0])
    w = LossRecipe()
    loss, _ = pair_loss(net, f1, f2, y1, y2, same, w)
    # Independent computation: logits by explicit matrix products, CE by log-softmax.
    W, b = net.identity.weight.flatten(1), net.identity.bias
    Wv, bv = net.verification.weight.flatten(1), net.verification.bias

    def ce(logits, t):
        return -(logits.log_softmax(1)[torch.arange(len(t)), t]).mean()

    ident = ce(f1 @ W.T + b, y1) + ce(f2 @ W.T + b, y2)
    verif = ce((f1 - f2) ** 2 @ Wv.T + bv, 1 - same)  # class 0 = same (Eq. 4: q1 = 1)
    assert w.identification_weight == 0.5 and w.verification_weight == 1.0
    assert torch.allclose(loss, 0.5 * ident + 1.0 * verif, rtol=1e-5)


@pytest.mark.parametrize("losses,heads", [
    (("identification",), {"id1", "id2"}),
    (("verification",), {"verif"}),
    (("identification", "verification"), {"id1", "id2", "verif"}),
    (("identification", "contrastive"), {"id1", "id2"}),
])
def test_loss_switches_select_heads(losses, heads):
    net = _build("resnet50", losses=losses, num_classes=5).train()
    assert (net.identity is not None) == ("identification" in losses)
    assert (net.verification is not None) == ("verification" in losses)
    f = net(torch.randn(4, 3, 64, 32))
    out = net.heads(f[:2], f[2:])
    assert set(out) == heads
    y, s = torch.tensor([0, 1]), torch.tensor([1, 0])
    loss, scalars = pair_loss(net, f[:2], f[2:], y, y, s, LossRecipe())
    loss.backward()
    assert net.backbone.stem[0].weight.grad is not None  # the loss reaches the backbone
    assert ("contrastive" in scalars) == ("contrastive" in losses)


def test_invalid_loss_combinations_rejected():
    for bad in ([], ["verification", "contrastive"], ["identification", "identification"]):
        with pytest.raises(ValidationError):
            VerifIdentifParams(losses=bad)


def test_contrastive_loss_hand_values():
    f1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    f2 = torch.tensor([[0.6, 0.8], [0.3, 0.4], [3.0, 4.0]])  # distances 1, 0.5, 5
    same = torch.tensor([1, 0, 0])
    # pos: 0.5·1² ; neg d=0.5: 0.5·(1-0.5)² ; neg d=5 beyond margin: 0
    expected = (0.5 + 0.5 * 0.25 + 0.0) / 3
    assert math.isclose(float(contrastive_loss(f1, f2, same, margin=1.0)), expected, rel_tol=1e-5)


def test_pair_ratio_schedule_1_to_4_at_1_01_per_epoch():
    sch = PairRatioSchedule(1.0, 1.01, 4.0)
    assert sch.ratio(0) == 1.0
    assert math.isclose(sch.ratio(10), 1.01 ** 10)
    # 1.01^n reaches 4 after ceil(ln 4 / ln 1.01) = 140 epochs, then stays capped.
    assert sch.ratio(139) < 4.0 and sch.ratio(140) == 4.0 and sch.ratio(500) == 4.0


def test_scheduled_sampler_follows_the_schedule_per_epoch():
    pids = np.repeat(np.arange(40), 10)  # 400 images, 40 ids
    s = ScheduledPairSampler(pids, PairRatioSchedule(1.0, 1.01, 4.0), seed=0)
    for epoch, ratio in [(0, 1.0), (70, 1.01 ** 70), (200, 4.0)]:
        s.set_epoch(epoch)  # what train_stage calls
        a, b, same = s.pairs()
        assert math.isclose(s.ratio, ratio)
        n_pos = int(same.sum())
        assert n_pos == round(400 / (1 + ratio))
        assert np.all((pids[a] == pids[b]) == (same == 1))
        assert sorted(a.tolist()) == list(range(400))  # each image an anchor once


@pytest.mark.slow
def test_table2_smoke_row_end_to_end(tmp_path, shared_data_root):
    """One siamese row of Table II through the real runner on synthetic data (fewer epochs)."""
    spec_path = ROOT / "papers" / "verif_identif" / "table2.yaml"
    data = yaml.safe_load(spec_path.read_text())
    data["smoke"]["recipe"]["train"].update({"epochs": 1, "lr_steps": []})
    out = tmp_path / "verif_identif" / "table2.yaml"
    out.parent.mkdir()
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(out)
    cells = plan(spec, rows=["ResNet-50 (I+V)"], smoke=True)
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "res", data_root=shared_data_root,
                                     smoke=True))
    summary = runner.run(cells)
    assert summary.ok, summary.failed
    assert len(summary.done) == 1


def test_fit_without_training_split_is_not_run(tmp_path):
    """Oxford5k (Table VII) has no training split: fit stops with a DatasetError (→ 'not run')
    that names the image-folder training the paper uses."""
    from reid_bench.core.errors import DatasetError
    from reid_bench.data.base import ReidDataset
    from reid_bench.engine.artifacts import ArtifactCache
    from reid_bench.engine.method import CellContext

    ds = ReidDataset(name="oxford5k", root=tmp_path, fingerprint="x",
                     splits={"train": [], "query": [], "gallery": []})
    ctx = CellContext(dataset=ds, device=torch.device("cpu"), seed=0,
                      cache=ArtifactCache(tmp_path / "c"), work_dir=tmp_path)
    recipe = VerifIdentifRecipe.model_validate({"backbone": {"pretrained": "none",
                                                             "width": 0.25}})
    with pytest.raises(DatasetError, match="imagefolder"):
        VerifIdentif().fit(VerifIdentifParams(pooling="mac"), recipe, ctx)


def test_pair_batchnorm_separate_runs_each_branch_as_its_own_batch():
    """Recipe ``pair_batchnorm``: ``separate`` gives each half its own BatchNorm statistics,
    ``joint`` (one stacked batch) shares them; the same network at test time."""
    torch.manual_seed(0)
    model = _build("resnet50", num_classes=5)
    a, b = torch.randn(4, 3, 64, 32), torch.randn(4, 3, 64, 32) * 3 + 1
    model.train()
    with torch.no_grad():
        sep = pair_descriptors(model, a, b, separate=True)
        torch.testing.assert_close(sep[0], model(a))
        torch.testing.assert_close(sep[1], model(b))
        joint = pair_descriptors(model, a, b, separate=False)
        assert not torch.allclose(joint[0], sep[0])
        model.eval()
        for x, y in zip(pair_descriptors(model, a, b, True), pair_descriptors(model, a, b, False),
                        strict=True):
            torch.testing.assert_close(x, y)
    assert VerifIdentifRecipe().pair_batchnorm == "joint"
