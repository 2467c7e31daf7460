"""Training samplers that belong to a method's recipe rather than to the data layer: P×K batches
with a fixed number of batches per epoch (Deep-Person Sec. 4.1) and pairs of corresponding
regions (LEDF Sec. 3.2, Sec. 4).

(Leading underscore: the registry does not import this as a method module.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from ..data.samplers import PairSampler, PKBatchSampler


class IdentityEpochPK:
    """Batch sampler: P×K batches from ``PKBatchSampler``, ``batches`` of them per epoch
    (Sec. 4.1 redefines an epoch as ceil(N_c / P) batches). Each epoch draws from fresh PK
    passes (seeded by epoch), chaining passes if one runs out."""

    def __init__(self, labels: list[int], p: int, k: int, seed: int):
        self.pk = PKBatchSampler(labels, p, k, seed)
        self.batches = math.ceil(len(set(labels)) / p)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[list[int]]:
        n, sub = 0, 0
        while True:
            # Sub-pass index: distinct for every (epoch, pass) pair.
            self.pk.set_epoch(self.epoch * 1000 + sub)
            for batch in self.pk:
                yield batch
                n += 1
                if n == self.batches:
                    return
            sub += 1


class RegionPairSampler:
    """Pairs of corresponding regions. Per epoch and region index k, a ``PairSampler`` makes
    every training image an anchor once, paired with an image of the same identity (similar) or
    of another (dissimilar) at ``ratio`` dissimilar per similar (Sec. 4: 1:1); the anchor's and
    the partner's region k form the pair. The K × n region pairs are yielded shuffled as
    ``(anchor, partner, same, k)`` keys for ``RegionPairDataset``. Deterministic given
    (seed, epoch); ``set_epoch`` moves to another epoch. With ``per_image`` an epoch is the
    first n of the shuffled K·n pairs (n = number of images: recipe ``pair_epoch:
    image_pairs``)."""

    def __init__(self, pids: Sequence[int], K: int, ratio: float, seed: int,
                 per_image: bool = False):
        self.K, self.seed, self.epoch, self.per_image = K, seed, 0, per_image
        # One pair draw per region index, so region k of an image gets its own partner.
        self.samplers = [PairSampler(pids, ratio, seed=seed * 1009 + k) for k in range(K)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for s in self.samplers:
            s.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.samplers[0])
        return n if self.per_image else self.K * n

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(anchors, partners, same, k)`` arrays of length K·n in this epoch's order."""
        parts = [s.pairs() for s in self.samplers]
        a = np.concatenate([p[0] for p in parts])
        b = np.concatenate([p[1] for p in parts])
        same = np.concatenate([p[2] for p in parts])
        k = np.repeat(np.arange(self.K), [len(p[0]) for p in parts])
        order = np.random.default_rng([self.seed, self.epoch, 7919]).permutation(len(a))
        order = order[:len(self)]
        return a[order], b[order], same[order], k[order]

    def __iter__(self) -> Iterator[tuple[int, int, int, int]]:
        return iter(zip(*(x.tolist() for x in self.pairs()), strict=True))


class RegionPairDataset:
    """``dataset[(a, b, same, k)]`` → ``(img_a, img_b, same, k)``: whole transformed images from
    ``image_dataset``; the step cuts region k out of both (so both get the same augmentation
    pipeline as the identification stage)."""

    def __init__(self, image_dataset):
        self.images = image_dataset

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key):
        a, b, same, k = key
        return self.images[a][0], self.images[b][0], same, k
