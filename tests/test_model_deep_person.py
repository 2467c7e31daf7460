"""Deep-Person (reid_bench/models/deep_person.py): part sequence and BiLSTM shapes (Sec. 3.2,
4.1), batch-hard triplet mining against brute force (Eq. 1), the P×K training loader
(Sec. 3.4, 4.1), branch switches and descriptors (Tables 4, 6, 7), and one Table 7 run through
the real runner."""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from reid_bench.core.registry import METHODS
from reid_bench.engine.method import CellContext
from reid_bench.engine.recipe import BackboneRecipe
from reid_bench.models.deep_person import (
    DeepPerson,
    DeepPersonArch,
    DeepPersonNet,
    DeepPersonParams,
    DeepPersonRecipe,
    PartSequenceLSTM,
    PerPartFC,
    batch_hard_triplet_loss,
    pk_loader,
)
from reid_bench.run.runner import Runner, RunOptions
from reid_bench.spec import load_spec
from reid_bench.table.plan import plan

ROOT = Path(__file__).resolve().parents[1]


def _recipe(**arch) -> DeepPersonRecipe:
    """The paper's recipe (256×128 input, H = 8, U = 256, stride-32 ResNet-50) at quarter
    width and random init, so tests stay fast."""
    return DeepPersonRecipe(backbone=BackboneRecipe(pretrained="none", width=0.25),
                            arch=DeepPersonArch(**arch))


def _net(params: DeepPersonParams | None = None, **arch) -> DeepPersonNet:
    torch.manual_seed(0)
    return DeepPerson().build(params or DeepPersonParams(), _recipe(**arch), num_classes=5)


# ------------------------------------------------------------------ part sequence and LSTM


def test_part_sequence_is_eight_row_means_at_paper_input():
    net = _net().eval()
    x = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        fb = net.backbone.feature_map(x)
        seq = net.part_sequence(fb)
    # Sec. 4.1: a 256×128 image through ResNet-50 (stride 32) gives fb with H = 8 rows.
    assert fb.shape[2:] == (8, 4)
    assert seq.shape == (2, 8, fb.shape[1])
    # Each step is its row of fb averaged over the width (1×W pooling), head (row 0) first.
    for h in range(8):
        torch.testing.assert_close(seq[:, h], fb[:, :, h, :].mean(-1))


def test_lstm_reads_eight_steps_and_outputs_u_per_part():
    net = _net().eval()
    seen = {}
    net.part_seq.lstm1.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o[0]))
    with torch.no_grad():
        f = net.branches(torch.randn(3, 3, 256, 128))
    c = net.backbone.feature_dim
    assert seen["inp"].shape == (3, 8, c)           # batch × 8 steps × C
    assert seen["out"].shape == (3, 8, 2 * 256)     # both directions, U = 256 each
    assert f["part_feat"].shape == (3, 8 * 256)     # H concatenated O_t of length U


def test_bidirectional_two_layer_hidden_sizes():
    lstm = PartSequenceLSTM(in_dim=512, hidden=256)
    for layer, in_dim in ((lstm.lstm1, 512), (lstm.lstm2, 256)):
        assert layer.bidirectional and layer.hidden_size == 256 and layer.input_size == in_dim
        # PyTorch packs the 4 gates: W_ih is 4U × in, W_hh is 4U × U, per direction.
        assert layer.weight_ih_l0.shape == (4 * 256, in_dim)
        assert layer.weight_hh_l0_reverse.shape == (4 * 256, 256)
    assert lstm.fc1.in_features == lstm.fc2.in_features == 2 * 256
    assert lstm.fc2.out_features == 256


def test_lstm_gives_context_per_part_fc_does_not():
    """O_0 (the head) depends on the last part through the backward direction; without the
    LSTM (Table 4 'w/o LSTM') every part is described alone."""
    torch.manual_seed(0)
    seq = torch.randn(2, 8, 16)
    moved = seq.clone()
    moved[:, 7] += 1.0
    for mod, context in ((PartSequenceLSTM(16, 8), True), (PerPartFC(8, 16, 8), False)):
        with torch.no_grad():
            a, b = mod(seq), mod(moved)
        assert a.shape == (2, 8, 8)
        assert (not torch.allclose(a[:, 0], b[:, 0])) is context
        assert not torch.allclose(a[:, 7], b[:, 7])


# ------------------------------------------------------------------ batch-hard triplet loss


def _brute_force_batch_hard(feats: torch.Tensor, labels: list[int], m: float) -> float:
    """Mean over anchors of the hardest triplet's hinge, by enumerating every (p, n) pair."""
    rows = feats.tolist()
    total = 0.0
    for a in range(len(rows)):
        pos = [p for p in range(len(rows)) if labels[p] == labels[a] and p != a]
        neg = [n for n in range(len(rows)) if labels[n] != labels[a]]
        worst = max(max(0.0, m + math.dist(rows[a], rows[p]) - math.dist(rows[a], rows[n]))
                    for p, n in itertools.product(pos, neg))
        total += worst
    return total / len(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_hard_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # P = 4, K = 3
    perm = torch.randperm(12, generator=g).tolist()
    labels = [labels[i] for i in perm]
    feats = torch.randn(12, 6, generator=g, dtype=torch.float64)
    loss, prec = batch_hard_triplet_loss(feats, torch.tensor(labels), 0.5)
    assert loss.item() == pytest.approx(_brute_force_batch_hard(feats, labels, 0.5), abs=1e-9)
    assert 0.0 <= prec.item() <= 1.0


def test_batch_hard_separated_is_zero_and_gradient_finite():
    # Two tight clusters 10 apart: every hardest positive is << hardest negative - margin.
    feats = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]], requires_grad=True)
    loss, prec = batch_hard_triplet_loss(feats, torch.tensor([0, 0, 1, 1]), 0.5)
    assert loss.item() == 0.0 and prec.item() == 1.0
    # Hand-computed: identical points, margin 0.5 → every anchor contributes 0.5 + 0 - 0.
    same = torch.ones(4, 3, requires_grad=True)
    loss, _ = batch_hard_triplet_loss(same, torch.tensor([0, 0, 1, 1]), 0.5)
    loss.backward()
    assert loss.item() == pytest.approx(0.5, abs=1e-5) and torch.isfinite(same.grad).all()


# ------------------------------------------------------------------ P×K loader


class _LabelsOnly:
    """An ImageDataset stand-in: tiny tensors, real labels (no images to decode)."""

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.zeros(1), self.labels[i], 0, i


def test_pk_loader_composition_and_epoch_length(tmp_path):
    # 20 identities with 3..12 images; P×K = 4×3.
    labels = [pid for pid in range(20) for _ in range(3 + pid % 10)]
    recipe = DeepPersonRecipe(sampler={"k": 3}, train={"optimizer": "adam", "batch_size": 12})
    ctx = CellContext(dataset=None, device=torch.device("cpu"), seed=3, cache=None,
                      work_dir=tmp_path)
    loader = pk_loader(_LabelsOnly(labels), recipe, ctx)
    # Sec. 4.1: an "epoch" is ceil(N_c / P) batches.
    assert len(loader) == math.ceil(20 / 4)
    epochs = []
    for epoch in range(2):
        loader.batch_sampler.set_epoch(epoch)
        batches = [b[1].tolist() for b in loader]
        assert len(batches) == 5
        for b in batches:
            counts = Counter(b)
            assert len(b) == 12 and len(counts) == 4 and set(counts.values()) == {3}
        epochs.append(batches)
    assert epochs[0] != epochs[1]
    loader.batch_sampler.set_epoch(0)
    assert [b[1].tolist() for b in loader] == epochs[0]  # deterministic given (seed, epoch)


def test_recipe_rejects_batch_not_multiple_of_k():
    with pytest.raises(ValidationError, match="multiple of"):
        DeepPersonRecipe(sampler={"k": 5}, train={"batch_size": 128})


# ------------------------------------------------------------------ branches and descriptors


def test_branch_switches_and_descriptors():
    x = torch.randn(4, 3, 256, 128)
    full = _net().train()
    out = full(x)
    assert set(out) == {"fm", "global_logits", "part_logits"}
    assert out["global_logits"].shape == out["part_logits"].shape == (4, 5)
    full.eval()
    with torch.no_grad():
        fm, fc = full.describe(x, "fm"), full.describe(x, "fc")
    assert fm.shape == (4, full.backbone.feature_dim)
    assert fc.shape == (4, 2048 + 8 * 256)  # global FC + H × U part feature (Table 7 "fc")

    gl = _net(DeepPersonParams(part_branch=False, triplet_branch=False)).train()
    assert set(gl(x)) == {"fm", "global_logits"} and gl.part_seq is None
    nolstm = _net(DeepPersonParams(global_branch=False, part_lstm=False))
    assert isinstance(nolstm.part_seq, PerPartFC) and nolstm.global_feat is None


def test_params_validation_and_eval_only_descriptor():
    with pytest.raises(ValidationError):
        DeepPersonParams(global_branch=False, part_branch=False, triplet_branch=False)
    with pytest.raises(ValidationError):
        DeepPersonParams(global_branch=False, part_branch=False, descriptor="fc")
    method = METHODS.get("deep_person")()
    a = method.training_key(DeepPersonParams(triplet_branch=False, descriptor="fc"))
    b = method.training_key(DeepPersonParams(triplet_branch=False))
    assert a == b  # Table 7's rows share one training


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_table7_smoke_through_runner(tmp_path, shared_data_root, caplog, monkeypatch):
    """Both Table 7 rows on the synthetic dataset, one epoch: one training, two ok cells."""
    # The copy's same_as references resolve against the project's papers/ in the working
    # directory (spec/same_as.py): run from the repository, wherever pytest was started.
    monkeypatch.chdir(ROOT)
    text = (ROOT / "papers/deep_person/table7.yaml").read_text()
    text = text.replace("train: {epochs: 6, lr: 0.002, batch_size: 32, lr_steps: [5], gamma: 0.1}",
                        "train: {epochs: 1, lr: 0.002, batch_size: 32, lr_steps: [], gamma: 0.1}")
    assert "epochs: 1," in text
    spec_path = tmp_path / "papers" / "deep_person" / "table7.yaml"
    spec_path.parent.mkdir(parents=True)
    spec_path.write_text(text)
    spec = load_spec(spec_path)
    caplog.set_level(logging.INFO, logger="reid_bench")
    runner = Runner(spec, RunOptions(results_dir=tmp_path / "results", data_root=shared_data_root,
                                     smoke=True))
    summary = runner.run(plan(spec, smoke=True))
    logs = caplog.messages
    assert summary.ok and len(summary.done) == 2, summary.failed
    assert sum("[deep_person] epoch 1/1" in m for m in logs) == 1  # fc and fm share the training


def test_grad_clip_rescales_only_large_gradients():
    from reid_bench.engine.recipe import GradClip
    from reid_bench.engine.train import clip_gradients

    big, small = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    big.grad, small.grad = torch.tensor([30.0, 40.0]), torch.tensor([0.3, 0.4])
    clip_gradients([big, small], GradClip(max_norm=10.0, per_parameter=True))
    torch.testing.assert_close(big.grad, torch.tensor([6.0, 8.0]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(small.grad, torch.tensor([0.3, 0.4]))
    # Sec. 4.1's per-parameter threshold reaches train_stage as train.grad_clip.
    from reid_bench.models.deep_person import DeepPersonRecipe

    clip = DeepPersonRecipe(grad_clip_norm=10.0).train_optim().grad_clip
    assert clip == GradClip(max_norm=10.0, per_parameter=True)
    assert DeepPersonRecipe().train_optim().grad_clip is None
