"""Distributed batch splitting: every global batch is cut between ranks so that the ranks'
parts are disjoint, together the whole batch, and no identity group is split."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from reid_bench.data.samplers import PairSampler, PKBatchSampler, make_loader
from reid_bench.engine import distributed
from reid_bench.engine.accel import Accel, AccelOptions, resolve

PIDS = [i // 5 for i in range(12 * 5)] + [12, 13, 13]  # 14 ids, some with few images


@pytest.mark.parametrize("world", [2, 4])
def test_pk_split_keeps_identities_whole(world):
    base = PKBatchSampler(PIDS, p=8, k=3, seed=3)
    ranks = [distributed.DistributedPKBatchSampler(PKBatchSampler(PIDS, p=8, k=3, seed=3), r, world)
             for r in range(world)]
    for epoch in (0, 1):
        base.set_epoch(epoch)
        for s in ranks:
            s.set_epoch(epoch)
        parts = list(zip(*[iter(s) for s in ranks], strict=True))
        full = list(base)
        assert len(parts) == len(full) == len(base) and all(len(s) == len(base) for s in ranks)
        for batch, split in zip(full, parts, strict=True):
            assert [i for part in split for i in part] == batch  # complete, in order
            id_sets = [{PIDS[i] for i in part} for part in split]
            for a in range(world):
                assert len(split[a]) == 8 // world * 3
                for b in range(a + 1, world):
                    assert not id_sets[a] & id_sets[b]  # disjoint identities
                # whole identities: every id of the part has all its K images of the batch
                for pid in id_sets[a]:
                    assert sum(PIDS[i] == pid for i in split[a]) == \
                        sum(PIDS[i] == pid for i in batch) == 3
    assert set().union(*[{PIDS[i] for part in p for i in part} for p in parts]) <= set(PIDS)


def test_pk_split_rejects_uneven_p():
    with pytest.raises(ValueError, match="divisible"):
        distributed.DistributedPKBatchSampler(PKBatchSampler(PIDS, p=3, k=2, seed=0), 0, 2)
    with pytest.raises(ValueError, match="identity group"):
        distributed.chunk_batch(list(range(4)), 0, 3, group=2)


def test_pair_batches_split_between_pairs():
    pids = np.repeat(np.arange(10), 4)
    base = torch.utils.data.BatchSampler(PairSampler(pids, 2.0, seed=1), 8, drop_last=True)
    ranks = [distributed.DistributedPairBatchSampler(
        torch.utils.data.BatchSampler(PairSampler(pids, 2.0, seed=1), 8, drop_last=True), r, 2)
        for r in range(2)]
    for s in ranks:
        s.set_epoch(4)  # forwarded to the inner PairSampler
    base.sampler.set_epoch(4)
    full = list(base)
    got = list(zip(*ranks, strict=True))
    assert len(full) == len(got) == 40 // 8
    for batch, (a, b) in zip(full, got, strict=True):
        assert a + b == batch and len(a) == len(b) == 4
        assert not set(a) & set(b)
        for anchor, partner, same in a + b:  # pairs stay whole and correct
            assert same == int(pids[anchor] == pids[partner])


def test_shard_loader_partitions_a_shuffled_loader():
    ds = TensorDataset(torch.arange(40).float(), torch.arange(40))
    loaders = [make_loader(ds, 10, shuffle=True, seed=5, drop_last=True) for _ in range(3)]
    full = [b[1].tolist() for b in loaders[0]]
    shards = [distributed.shard_loader(loaders[r + 1], r, 2) for r in range(2)]
    assert all(isinstance(s, DataLoader) and s.generator is loaders[r + 1].generator
               for r, s in enumerate(shards))
    parts = list(zip(*[[b[1].tolist() for b in s] for s in shards], strict=True))
    assert [a + b for a, b in parts] == full
    assert sorted(i for a, b in parts for i in a + b) == list(range(40))


def test_accel_resolution_on_cpu():
    a = resolve(AccelOptions(), "cpu")
    assert (a.amp_dtype, a.channels_last, a.compile, a.cudnn_benchmark) == (None, False,
                                                                             False, False)
    assert a.tag == "fp32" and not a.active
    b = resolve(AccelOptions(precision="bf16", channels_last=True), "cpu")
    assert b.amp_dtype == "bfloat16" and not b.grad_scaler and b.tag == "bf16+cl"
    c = Accel(device_type="cuda", amp_dtype="float16", cudnn_benchmark=True, precision="fp16")
    assert c.grad_scaler and c.tag == "fp16+scaler+cudnn"
    x = torch.zeros(2, 3, 4, 4)
    y = b.prepare_batch([x, torch.zeros(2)])
    assert y[0].is_contiguous(memory_format=torch.channels_last) and y[1].dim() == 1
