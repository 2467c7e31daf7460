"""LEDF (reid_bench/models/ledf.py): the block-1 ninth-conv tap, region splitting, summing maps
(Eqs. 4–5), the square layer (Eq. 1), region-pair sampling at 1:1, and one end-to-end smoke
run of Table 4 rows through the real runner."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from reid_bench.engine.recipe import BackboneRecipe, InputRecipe
from reid_bench.models._regions import region_bounds
from reid_bench.models.backbones import build_backbone
from reid_bench.models.ledf import (
    LEDF,
    LEDFParams,
    LEDFRecipe,
    LocalFeatureTrunk,
    RegionPairSampler,
    SizeRecipe,
    SummingMapExtractor,
    VerificationNet,
    crop_regions,
    holistic_summing_map,
    local_summing_map,
    map_to_image,
    ninth_conv,
    split_regions,
)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_backbone("resnet50", width=0.25, pretrained="none").eval()


def _block1_convs(bb) -> list[nn.Conv2d]:
    # Convolutions of the first block (res2) in forward order, without the projection shortcut.
    return [m for name, m in bb.res2.named_modules()
            if isinstance(m, nn.Conv2d) and "downsample" not in name]


# ------------------------------------------------------------------------------ the tap

def test_first_block_has_nine_convs_and_the_tap_is_the_last(resnet):
    convs = _block1_convs(resnet)
    assert len(convs) == 9  # Sec. 4: "each block contains nine convolution layers"
    assert ninth_conv(resnet) is convs[8]
    assert convs[8].kernel_size == (1, 1) and convs[8].out_channels == 64  # 256 × 0.25


@torch.no_grad()
def test_conv_tap_is_ninth_conv_output_before_bn_and_residual(resnet):
    x = torch.randn(2, 3, 64, 32)
    # Independent forward, written out from ResNet's bottleneck definition.
    h = resnet.pool1(resnet.stem(x))
    h = resnet.res2[1](resnet.res2[0](h))
    b = resnet.res2[2]
    t = b.act1(b.bn1(b.conv1(h)))
    t = b.act2(b.bn2(b.conv2(t)))
    expected = b.conv3(t)
    got = LocalFeatureTrunk(resnet, "conv")(x)
    assert got.shape == (2, 64, 16, 8)  # 256·width channels at 1/4 resolution
    torch.testing.assert_close(got, expected)
    # Before bn3/residual/ReLU: negative values survive; the block output is ReLU'd.
    assert (got < 0).any()
    block = LocalFeatureTrunk(resnet, "block")(x)
    torch.testing.assert_close(block, resnet.res2(resnet.pool1(resnet.stem(x))))
    assert (block >= 0).all()


@torch.no_grad()
def test_full_width_tap_shape_at_224():
    # Sec. 4: regions are 224x224; the first block of ResNet-50 gives 256 maps of 56x56.
    bb = build_backbone("resnet50", width=1.0, pretrained="none").eval()
    z = LocalFeatureTrunk(bb, "conv")(torch.randn(1, 3, 224, 224))
    assert z.shape == (1, 256, 56, 56)


# ------------------------------------------------------------------------------ regions

@pytest.mark.parametrize("K", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("height", [5, 7, 13, 16, 56, 57, 64])
def test_regions_cover_every_row_exactly_once(K, height):
    bounds = region_bounds(height, K)
    assert len(bounds) == K and bounds[0][0] == 0 and bounds[-1][1] == height
    assert all(a < b for a, b in bounds)
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(K - 1))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1
    x = torch.arange(2 * 3 * height * 4, dtype=torch.float32).reshape(2, 3, height, 4)
    count = torch.zeros(height)
    for a, b in bounds:
        count[a:b] += 1
    assert torch.equal(count, torch.ones(height))
    torch.testing.assert_close(torch.cat(split_regions(x, K), dim=2), x)


def test_region_bounds_reject_too_many_regions():
    with pytest.raises(ValueError):
        region_bounds(3, 4)


def test_crop_regions_takes_region_k_of_each_image():
    x = torch.arange(2 * 1 * 6 * 2, dtype=torch.float32).reshape(2, 1, 6, 2)
    out = crop_regions(x, torch.tensor([0, 2]), 3, (2, 2))  # regions of 2 rows: no resampling
    torch.testing.assert_close(out[0], x[0, :, 0:2])
    torch.testing.assert_close(out[1], x[1, :, 4:6])


# ------------------------------------------------------------------------------ summing maps

def test_local_summing_map_is_the_mean_of_the_m_maps():
    z = torch.stack([torch.full((2, 3), 1.0), torch.full((2, 3), 2.0), torch.full((2, 3), 6.0)])
    Z = local_summing_map(z[None])  # M = 3 maps → Σ/M = 3
    assert Z.shape == (1, 1, 2, 3)
    assert torch.equal(Z, torch.full((1, 1, 2, 3), 3.0))


def test_holistic_summing_map_stacks_regions_top_to_bottom():
    maps = [torch.full((2, 1, 4, 3), float(k)) for k in range(5)]
    Z = holistic_summing_map(maps)
    assert Z.shape == (2, 1, 20, 3)
    for k in range(5):
        assert torch.equal(Z[:, :, 4 * k:4 * (k + 1)], maps[k])


@pytest.mark.parametrize("K", [1, 3, 5])
@torch.no_grad()
def test_extractor_builds_the_holistic_map_from_each_region(resnet, K):
    trunk = LocalFeatureTrunk(resnet, "conv")
    ext = SummingMapExtractor(trunk, K, (16, 16))
    x = torch.randn(2, 3, 64, 32)
    Z = ext(x)
    assert Z.shape == (2, 1, 4 * K, 4)  # each 16x16 region → 4x4 local summing map
    for k, r in enumerate(split_regions(x, K)):
        r = torch.nn.functional.interpolate(r, size=(16, 16), mode="bilinear",
                                            align_corners=False)
        torch.testing.assert_close(Z[:, :, 4 * k:4 * k + 4], trunk(r).mean(1, keepdim=True))


def test_map_to_image_is_a_normalised_three_channel_image():
    z = torch.rand(2, 1, 12, 4) * 50 - 10
    img = map_to_image(z, (16, 8))
    assert img.shape == (2, 3, 16, 8)
    # min-max scaled to [0, 1] before ImageNet normalisation: channel 0 range is [-m/s, (1-m)/s]
    lo, hi = -0.485 / 0.229, (1 - 0.485) / 0.229
    assert img[:, 0].min() >= lo - 1e-4 and img[:, 0].max() <= hi + 1e-4
    assert torch.isfinite(map_to_image(torch.ones(1, 1, 4, 4), (4, 4))).all()


# ------------------------------------------------------------------------------ networks

@torch.no_grad()
def test_square_layer_is_symmetric_and_matches_eq1(resnet):
    net = VerificationNet(resnet).eval()
    a, b = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)
    out = net(a, b)
    assert out.shape == (3, 2)
    torch.testing.assert_close(out, net(b, a))  # (f1 − f2)² does not depend on the order
    f1, f2 = resnet(a), resnet(b)
    torch.testing.assert_close(out, net.fc((f1 - f2) ** 2))


def _smoke_recipe(**kw) -> LEDFRecipe:
    return LEDFRecipe(input=InputRecipe(height=64, width=32),
                      region=SizeRecipe(height=16, width=16),
                      id_input=SizeRecipe(height=64, width=32),
                      backbone=BackboneRecipe(pretrained="none", width=0.25), **kw)


def test_identification_training_leaves_the_verification_trunk_fixed():
    torch.manual_seed(0)
    model = LEDF().build(LEDFParams(K=3), _smoke_recipe(), num_classes=4)
    model.train()
    assert model.idnet.training and not model.extractor.training
    before = copy.deepcopy(model.extractor.state_dict())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 32)), torch.arange(4))
    loss.backward()
    opt.step()
    for k, v in model.extractor.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BN statistics unchanged
    model.eval()
    assert model(torch.randn(2, 3, 64, 32)).shape == (2, 512)  # 2048 × 0.25 descriptor


# ------------------------------------------------------------------------------ pairs

@pytest.mark.parametrize("K", [1, 3, 5])
def test_region_pairs_are_one_to_one_and_cover_every_region(K):
    pids = np.repeat(np.arange(10), 4)  # 40 images, 10 identities
    s = RegionPairSampler(pids, K, ratio=1.0, seed=3)
    for epoch in (0, 7):
        s.set_epoch(epoch)
        a, b, same, k = s.pairs()
        assert len(a) == len(s) == K * 40
        assert same.sum() == K * 20  # similar : dissimilar = 1 : 1 exactly
        assert np.all((pids[a] == pids[b]) == (same == 1))
        assert np.all(a != b)
        # every (image, region) is an anchor exactly once per epoch
        assert len({(int(i), int(j)) for i, j in zip(a, k, strict=True)}) == K * 40
        assert set(k.tolist()) == set(range(K))
    first = s.pairs()
    s.set_epoch(0)
    assert not np.array_equal(first[1], s.pairs()[1])  # epochs draw different partners


@pytest.mark.parametrize("K", [1, 5])
def test_image_pair_epochs_have_n_pairs_whatever_k(K):
    """Recipe pair_epoch: image_pairs — every K gets the same number of updates per epoch."""
    pids = np.repeat(np.arange(10), 4)
    s = RegionPairSampler(pids, K, ratio=1.0, seed=3, per_image=True)
    a, b, same, k = s.pairs()
    assert len(s) == len(a) == 40
    assert np.all((pids[a] == pids[b]) == (same == 1))
    full = RegionPairSampler(pids, K, ratio=1.0, seed=3)
    assert len(full) == K * 40


def test_pair_batchnorm_separate_normalises_each_branch_on_its_own():
    torch.manual_seed(0)
    bb = build_backbone("resnet50", width=0.25, pretrained="none")
    joint, sep = VerificationNet(bb), VerificationNet(bb, separate_bn=True)
    sep.fc.load_state_dict(joint.fc.state_dict())
    a, b = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32) * 3 + 1
    joint.train(), sep.train()
    with torch.no_grad():
        f1, f2 = bb(a), bb(b)  # each branch alone: BN statistics of its own batch
        torch.testing.assert_close(sep(a, b), sep.fc((f1 - f2) ** 2))
        assert not torch.allclose(joint(a, b), sep(a, b))  # stacked: shared statistics
        joint.eval(), sep.eval()
        torch.testing.assert_close(joint(a, b), sep(a, b))  # same network at test time


# ------------------------------------------------------------------------------ end to end

def test_table4_rows_run_and_share_the_verification_network(tmp_path, shared_data_root,
                                                             repo_root, caplog):
    from reid_bench.run.runner import Runner, RunOptions
    from reid_bench.spec import load_spec
    from reid_bench.table.plan import plan

    data = yaml.safe_load((repo_root / "papers/ledf/table4.yaml").read_text())
    data["smoke"]["recipe"]["verification"] = {"epochs": 1, "lr": 0.05, "lr_steps": [],
                                               "batch_size": 24}
    data["smoke"]["recipe"]["identification"] = {"epochs": 1, "lr": 0.05, "lr_steps": [],
                                                 "batch_size": 48}
    data["smoke"]["dataset_options"] = {"num_train_ids": 12, "num_test_ids": 8,
                                        "images_per_cam": 1, "num_distractors": 4,
                                        "num_junk": 2}
    k2 = next(r for r in data["rows"] if r["name"] == "K=2")
    data["rows"] = [k2, {**k2, "name": "K=2 block tap", "params": {"K": 2, "tap": "block"}}]
    data.pop("claims", None)  # they name rows this two-row table does not have
    path = tmp_path / "ledf" / "table4.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(path, check_methods=True)
    caplog.set_level(logging.INFO, logger="reid_bench")
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "results",
                                     data_root=shared_data_root, smoke=True))
    summary = runner.run(plan(spec, smoke=True))
    logs = caplog.messages
    assert summary.ok, summary.failed
    assert len(summary.done) == 2
    verif = list((tmp_path / "results" / "_artifacts" / "ledf_verification").glob("*/config.json"))
    assert len(verif) == 1  # one K → one verification network, reused by the second row
    assert sum("reusing verification network K=2" in line for line in logs) == 1
