"""Which images go into which batch: P×K identity batches (triplet losses), image pairs with a
scheduled negative:positive ratio (siamese verification losses), and the seeded DataLoader.

Everything is deterministic given (seed, epoch). Samplers live in the main process, so calling
``set_epoch`` takes effect even with persistent DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


def _groups(pids: Sequence[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Distinct pids (sorted) and, for each, the indices holding it (ascending)."""
    arr = np.asarray(pids)
    uniq, inverse = np.unique(arr, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1]
    return uniq, np.split(order, bounds)


class PKBatchSampler:
    """Batches of ``p`` identities × ``k`` images each (batch size p·k), for ``batch_sampler=``.

    Per epoch, every identity's images are shuffled and cut into chunks of ``k`` (an identity
    with fewer than ``k`` images gives one chunk sampled with replacement; a remainder shorter
    than ``k`` is dropped). The epoch has ``len(self)`` = (total chunks) // ``p`` batches; each
    batch takes one chunk from each of ``p`` distinct identities, drawn with probability
    proportional to their remaining chunks; an identity whose chunks run out is reshuffled
    and re-chunked so a batch can always be filled. Yields lists of ``p*k`` indices into
    ``pids``, grouped by identity. Deterministic given ``seed`` and the epoch (``set_epoch``).
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int):
        if p < 1 or k < 1:
            raise ValueError(f"PKBatchSampler needs p >= 1 and k >= 1, got p={p}, k={k}")
        self.uniq, self.groups = _groups(pids)
        if len(self.uniq) < p:
            raise ValueError(f"PKBatchSampler: p={p} identities per batch but the data has only "
                             f"{len(self.uniq)}; lower p (batch size = p*k) or use more identities")
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0
        self._chunks_per_id = np.array([max(1, len(g) // k) for g in self.groups])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches ``__iter__`` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return int(self._chunks_per_id.sum()) // self.p

    def _chunks(self, rng: np.random.Generator, i: int) -> list[np.ndarray]:
        g = self.groups[i]
        if len(g) < self.k:
            return [rng.choice(g, self.k, replace=True)]
        perm = rng.permutation(g)
        return [perm[j * self.k:(j + 1) * self.k] for j in range(len(g) // self.k)]

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        pools = [self._chunks(rng, i) for i in range(len(self.groups))]
        for _ in range(len(self)):
            left = np.array([len(c) for c in pools], dtype=float)
            empty = np.flatnonzero(left == 0)
            if len(left) - len(empty) < self.p:
                for i in empty:
                    pools[i] = self._chunks(rng, i)
                left[empty] = [len(pools[i]) for i in empty]
            ids = rng.choice(len(pools), self.p, replace=False, p=left / left.sum())
            yield [int(x) for i in ids for x in pools[i].pop()]


@dataclass(frozen=True)
class PairRatioSchedule:
    """Negative:positive pair ratio per epoch: ``start`` × ``factor``^epoch, capped at
    ``maximum`` (Verif-Identif III-F: 1:1, ×1.01 per epoch, up to 1:4). ``factor=1.0`` gives a
    constant ratio (LEDF: 1:1)."""

    start: float = 1.0
    factor: float = 1.01
    maximum: float = 4.0

    def ratio(self, epoch: int) -> float:
        """Negatives per positive in 0-based ``epoch``."""
        return float(min(self.maximum, self.start * self.factor ** epoch))


class PairSampler:
    """One pair per image per epoch: every index is an anchor once, in a shuffled order, paired
    with a random image of the same identity (``same`` = 1) or of another identity (``same`` =
    0). round(n / (1 + ``ratio``)) anchors, chosen at random, are positives, so
    negatives:positives ≈ ``ratio``; anchors whose identity has a single image can only be
    negatives (if too few anchors remain eligible, there are fewer positives).

    Iterating yields ``(anchor, partner, same)`` tuples, the keys ``PairDataset`` takes, so use
    it as the DataLoader's ``sampler=``. ``pairs()`` returns the three numpy arrays. Deterministic
    given (``seed``, epoch, ratio); ``set_epoch(epoch, ratio)`` moves to another epoch.
    """

    def __init__(self, pids: Sequence[int], ratio: float, seed: int, epoch: int = 0):
        if ratio < 0:
            raise ValueError(f"PairSampler ratio must be >= 0, got {ratio}")
        self.pids = np.asarray(pids)
        uniq, self.groups = _groups(self.pids)
        if len(uniq) < 2:
            raise ValueError("PairSampler needs at least two identities to form negative pairs")
        self.seed, self.epoch, self.ratio = seed, epoch, ratio
        n = len(self.pids)
        # For each index: its identity's group, and its position inside that group.
        self._group_of = np.empty(n, dtype=int)
        self._pos_in_group = np.empty(n, dtype=int)
        for gi, g in enumerate(self.groups):
            self._group_of[g] = gi
            self._pos_in_group[g] = np.arange(len(g))
        self._sizes = np.array([len(g) for g in self.groups])

    def set_epoch(self, epoch: int, ratio: float | None = None) -> None:
        """Select the epoch (and, with a schedule, its ratio)."""
        self.epoch = epoch
        if ratio is not None:
            self.ratio = ratio

    def __len__(self) -> int:
        return len(self.pids)

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(anchors, partners, same)`` int arrays of length n for the current epoch."""
        n = len(self.pids)
        rng = np.random.default_rng([self.seed, self.epoch, int(round(self.ratio * 1e6))])
        anchors = rng.permutation(n)
        size = self._sizes[self._group_of[anchors]]
        eligible = np.flatnonzero(size > 1)
        n_pos = min(int(round(n / (1 + self.ratio))), len(eligible))
        same = np.zeros(n, dtype=np.int64)
        same[rng.choice(eligible, n_pos, replace=False)] = 1
        partners = np.empty(n, dtype=np.int64)
        # Positives: another image of the same identity (offset 1..m-1 within the group).
        pos = np.flatnonzero(same == 1)
        a = anchors[pos]
        g, m = self._group_of[a], self._sizes[self._group_of[a]]
        off = (self._pos_in_group[a] + 1 + (rng.random(len(a)) * (m - 1)).astype(int)) % m
        partners[pos] = [self.groups[gi][o] for gi, o in zip(g, off, strict=True)]
        # Negatives: uniform over images of other identities (redraw the few same-id hits).
        neg = np.flatnonzero(same == 0)
        cand = rng.integers(0, n, len(neg))
        bad = self.pids[cand] == self.pids[anchors[neg]]
        while bad.any():
            cand[bad] = rng.integers(0, n, int(bad.sum()))
            bad = self.pids[cand] == self.pids[anchors[neg]]
        partners[neg] = cand
        return anchors, partners, same

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        a, b, s = self.pairs()
        return iter(zip(a.tolist(), b.tolist(), s.tolist(), strict=True))


class PairDataset:
    """Image pairs for siamese training. ``dataset[(a, b, same)]`` (the keys a ``PairSampler``
    yields) returns ``(img_a, label_a, img_b, label_b, same)`` with images and labels taken from
    ``image_dataset`` (an ``ImageDataset``; labels are its relabelled ids) and ``same`` 1/0;
    an int key ``i`` means the i-th pair of ``pair_sampler``'s current epoch. The default
    collate turns a batch into (B×C×H×W, B, B×C×H×W, B, B) tensors."""

    def __init__(self, image_dataset, pair_sampler: PairSampler):
        self.images = image_dataset
        self.sampler = pair_sampler
        self._cache: tuple[tuple[int, float], tuple[np.ndarray, ...]] | None = None

    def __len__(self) -> int:
        return len(self.sampler)

    def _pair(self, i: int) -> tuple[int, int, int]:
        key = (self.sampler.epoch, self.sampler.ratio)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.sampler.pairs())
        a, b, s = self._cache[1]
        return int(a[i]), int(b[i]), int(s[i])

    def __getitem__(self, key):
        a, b, same = key if isinstance(key, tuple) else self._pair(key)
        img_a, label_a, _, _ = self.images[a]
        img_b, label_b, _, _ = self.images[b]
        return img_a, label_a, img_b, label_b, same


def _seed_worker(worker_id: int) -> None:
    # DataLoader seeds each worker's torch RNG with base_seed + worker_id, where base_seed comes
    # from the loader's generator; derive numpy's and random's seeds from it so augmentations
    # in any library are reproducible.
    import random

    import torch

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def default_num_workers(device: object) -> int:
    """Loader worker processes when ``--num-workers`` is not given: on CUDA, ``min(8, CPUs
    available to this process / processes on this node)`` — decoding and augmenting JPEGs in
    the main process starves a GPU; on CPU 0, since workers would compete with the training
    threads for the same cores. Processes per node: torchrun's LOCAL_WORLD_SIZE, or the local
    pool's REID_BENCH_PROCS_PER_NODE."""
    import os

    import torch

    if torch.device(device).type != "cuda":
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))  # respects Slurm's / taskset's CPU binding
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    procs = int(os.environ.get("LOCAL_WORLD_SIZE")
                or os.environ.get("REID_BENCH_PROCS_PER_NODE") or 1)
    return max(1, min(8, cpus // max(1, procs)))


def make_loader(dataset, batch_size: int, *, shuffle: bool, seed: int, num_workers: int = 0,
                pin_memory: bool = False, drop_last: bool, batch_sampler=None, sampler=None):
    """A ``torch.utils.data.DataLoader`` over ``dataset`` whose order and worker seeds depend only
    on ``seed`` (a seeded ``torch.Generator``; each call to ``iter`` advances it, so successive
    epochs differ but the sequence is reproducible). With ``batch_sampler`` (e.g.
    PKBatchSampler), ``batch_size``/``shuffle``/``drop_last`` are ignored; with ``sampler`` (e.g.
    PairSampler), ``shuffle`` is ignored. Workers are persistent when ``num_workers`` > 0.

    With ``num_workers=0`` the random transforms run in the main process and draw from torch's
    global RNG: seed it (``torch.manual_seed``) for reproducible augmentation."""
    import torch
    from torch.utils.data import DataLoader

    gen = torch.Generator()
    gen.manual_seed(seed)
    common = dict(num_workers=num_workers, pin_memory=pin_memory, generator=gen,
                  worker_init_fn=_seed_worker if num_workers > 0 else None,
                  persistent_workers=num_workers > 0)
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **common)
    if sampler is not None:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                          **common)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      **common)
