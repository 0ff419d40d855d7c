"""One-permutation MinHash co-occurrence sketch against exact Jaccard similarities."""

from __future__ import annotations

import numpy as np
import pytest
from sae_core.cache.sketch import MinHashSketch, jaccard_from_bins


def _exact(a: set, b: set) -> float:
    return len(a & b) / len(a | b)


def test_minhash_jaccard_matches_exact():
    rng = np.random.default_rng(0)
    universe = rng.permutation(10**6)[:20000]
    # latent 0: tokens [0, 6000), latent 1: [3000, 9000) -> J = 3000 / 9000 = 1/3
    # latent 2 = latent 0 (J = 1); latent 3 disjoint from 0 (J = 0); latent 4 empty
    sets = [
        set(universe[:6000]),
        set(universe[3000:9000]),
        set(universe[:6000]),
        set(universe[12000:15000]),
        set(),
    ]
    sk = MinHashSketch(5, bins=128, seed=1)
    pairs = [(i, int(t)) for i, s in enumerate(sets) for t in s]
    pairs = [pairs[j] for j in rng.permutation(len(pairs))]  # any order, any batching
    for a in range(0, len(pairs), 4096):
        chunk = np.asarray(pairs[a : a + 4096])
        sk.update(chunk[:, 0], chunk[:, 1])
    assert sk.jaccard(0, 2) == 1.0
    assert sk.jaccard(0, 3) == 0.0
    assert sk.jaccard(0, 4) == 0.0 and sk.jaccard(4, 4) == 0.0
    sd = np.sqrt((1 / 3) * (2 / 3) / 128)  # ~0.042
    assert abs(sk.jaccard(0, 1) - 1 / 3) < 4 * sd
    # many random pairs of overlapping sets: unbiased on average, spread ~ sqrt(J(1-J)/bins)
    errs = []
    for trial in range(40):
        lo, hi = sorted(rng.integers(0, 20000, 2))
        a, b = set(universe[: max(hi, 50)]), set(universe[lo:])
        s2 = MinHashSketch(2, bins=128, seed=trial)
        for i, st in enumerate((a, b)):
            t = np.fromiter(st, dtype=np.int64)
            s2.update(np.full(t.size, i), t)
        errs.append(s2.jaccard(0, 1) - _exact(a, b))
    assert abs(np.mean(errs)) < 0.02 and np.sqrt(np.mean(np.square(errs))) < 0.06


def test_minhash_small_sets_and_broadcast():
    sk = MinHashSketch(3, bins=64)
    sk.update(np.array([0, 0, 0, 1, 1, 2]), np.array([5, 6, 7, 6, 7, 100]))
    # with <= 3 tokens per set, collisions in 64 bins are unlikely; exact 2/3 and 0
    assert sk.jaccard(0, 1) == pytest.approx(2 / 3)
    assert sk.jaccard(0, 2) == 0.0
    v = jaccard_from_bins(sk.table[0][None], sk.table)
    assert v.shape == (3,) and v[0] == 1.0
    with pytest.raises(ValueError, match="power of two"):
        MinHashSketch(2, bins=100)
