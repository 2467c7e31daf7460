"""P×K batches, pair sampling with a ratio schedule, seeded loaders."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from reid_bench.data.samplers import (
    PairDataset,
    PairRatioSchedule,
    PairSampler,
    PKBatchSampler,
    make_loader,
)

# 10 identities with 1..10 images each, labels deliberately non-contiguous and interleaved.
PIDS = [pid for pid, n in zip(range(100, 110), range(1, 11), strict=True) for _ in range(n)]
RNG_PIDS = list(np.random.default_rng(5).permutation(PIDS))


def test_pk_batches_composition():
    s = PKBatchSampler(RNG_PIDS, p=4, k=3, seed=0)
    batches = list(s)
    # chunks per id: max(1, n // 3) for n = 1..10 → 1,1,1,1,1,2,2,2,3,3 = 17 → 17 // 4 = 4.
    assert len(s) == 4 == len(batches)
    for b in batches:
        assert len(b) == 12
        pids = [RNG_PIDS[i] for i in b]
        counts = Counter(pids)
        assert len(counts) == 4 and set(counts.values()) == {3}
        # grouped by identity
        assert pids == sorted(pids, key=lambda p: pids.index(p))
    # ids with >= 3 images never repeat an image inside their chunk
    for b in batches:
        for j in range(0, 12, 3):
            chunk = b[j:j + 3]
            if RNG_PIDS.count(RNG_PIDS[chunk[0]]) >= 3:
                assert len(set(chunk)) == 3


def test_pk_with_replacement_for_small_ids():
    pids = [1, 2, 2, 3, 3, 3]
    s = PKBatchSampler(pids, p=3, k=4, seed=1)
    (b,) = list(s)
    assert Counter(pids[i] for i in b) == {1: 4, 2: 4, 3: 4}
    assert [i for i in b if pids[i] == 1] == [0, 0, 0, 0]


def test_pk_deterministic_and_epoch_aware():
    a = PKBatchSampler(RNG_PIDS, 3, 2, seed=7)
    b = PKBatchSampler(RNG_PIDS, 3, 2, seed=7)
    assert list(a) == list(b)
    e0 = list(a)
    a.set_epoch(1)
    assert list(a) != e0
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(PKBatchSampler(RNG_PIDS, 3, 2, seed=8)) != e0


def test_pk_covers_most_images_per_epoch():
    pids = [i // 8 for i in range(8 * 20)]  # 20 ids × 8 images, k=4 → exactly 2 chunks each
    s = PKBatchSampler(pids, p=5, k=4, seed=0)
    seen = [i for b in s for i in b]
    assert len(s) == 8 and sorted(seen) == list(range(160))


def test_pk_rejects_too_few_ids():
    with pytest.raises(ValueError, match="only 2"):
        PKBatchSampler([1, 1, 2], p=3, k=2, seed=0)


def test_pair_ratio_schedule():
    s = PairRatioSchedule()
    assert s.ratio(0) == 1.0
    assert s.ratio(1) == pytest.approx(1.01)
    assert s.ratio(50) == pytest.approx(1.01 ** 50)
    n_cap = int(np.ceil(np.log(4) / np.log(1.01)))  # 140
    assert s.ratio(n_cap - 1) < 4.0 and s.ratio(n_cap) == 4.0 and s.ratio(1000) == 4.0
    assert PairRatioSchedule(factor=1.0).ratio(300) == 1.0


@pytest.mark.parametrize("ratio", [1.0, 2.5, 4.0])
def test_pair_sampler_ratio_and_validity(ratio):
    pids = np.repeat(np.arange(50), 8)
    ps = PairSampler(pids, ratio=ratio, seed=0, epoch=3)
    a, b, same = ps.pairs()
    n = len(pids)
    assert sorted(a.tolist()) == list(range(n))  # every image is an anchor once
    assert (pids[a] == pids[b]).tolist() == same.astype(bool).tolist()
    assert not np.any((a == b) & (same == 1))  # a positive pairs two different images
    pos = same.sum()
    assert pos == round(n / (1 + ratio))
    assert (n - pos) / pos == pytest.approx(ratio, rel=0.02)
    # deterministic; other epoch → other pairs
    assert all(np.array_equal(x, y) for x, y in zip(ps.pairs(), PairSampler(pids, ratio, 0, 3).pairs(), strict=True))
    ps.set_epoch(4)
    assert not np.array_equal(ps.pairs()[1], b)


def test_pair_sampler_singletons_are_negatives():
    pids = np.array([0, 1, 1, 2, 2, 2, 3])
    a, b, same = PairSampler(pids, ratio=0.0, seed=0).pairs()
    single = np.isin(a, [0, 6])
    assert same[single].sum() == 0 and same[~single].all()


def test_pair_partner_distribution_is_spread():
    pids = np.repeat(np.arange(4), 5)
    partners = Counter()
    for e in range(200):
        a, b, same = PairSampler(pids, 1.0, seed=0, epoch=e).pairs()
        partners.update(b[(a == 0) & (same == 1)].tolist())
    assert set(partners) == {1, 2, 3, 4}


class _Toy:
    """Minimal ImageDataset stand-in: image = a tensor holding the index."""

    def __init__(self, pids):
        self.pids = pids

    def __len__(self):
        return len(self.pids)

    def __getitem__(self, i):
        return torch.tensor([float(i)]), self.pids[i], 0, i


def test_pair_dataset_through_loader():
    pids = list(np.repeat(np.arange(6), 4))
    ps = PairSampler(pids, ratio=2.0, seed=1)
    ds = PairDataset(_Toy(pids), ps)
    dl = make_loader(ds, 5, shuffle=False, seed=0, drop_last=False, sampler=ps)
    got = [(int(x), int(y), int(s)) for ia, la, ib, lb, same in dl
           for x, y, s, l1, l2 in zip(ia[:, 0], ib[:, 0], same, la, lb, strict=True)
           if (l1 == l2) == bool(s)]
    a, b, s = ps.pairs()
    assert got == list(zip(a.tolist(), b.tolist(), s.tolist(), strict=True))
    assert ds[0][4] == int(s[0]) and int(ds[0][0][0]) == a[0]


def test_loader_determinism():
    ds = _Toy(list(range(30)))

    def order(seed, epochs=2):
        dl = make_loader(ds, 4, shuffle=True, seed=seed, drop_last=True)
        return [[int(i) for i in batch[3]] for _ in range(epochs) for batch in dl]

    o = order(0)
    assert o == order(0) and o != order(1)
    assert len(o) == 2 * 7 and o[:7] != o[7:]  # epochs differ, tail dropped
    pk = PKBatchSampler(list(range(10)) * 3, p=2, k=3, seed=0)
    dl = make_loader(ds, 0, shuffle=False, seed=0, drop_last=False, batch_sampler=pk)
    assert [b[3].tolist() for b in dl] == list(pk)


def test_loader_workers_seeded():
    class Rand(_Toy):
        def __getitem__(self, i):
            return torch.rand(1), float(np.random.rand()), 0, i

    def draws():
        dl = make_loader(Rand(list(range(8))), 4, shuffle=False, seed=3, num_workers=2,
                         drop_last=False)
        return [(b[0].tolist(), b[1].tolist()) for b in dl]

    assert draws() == draws()
