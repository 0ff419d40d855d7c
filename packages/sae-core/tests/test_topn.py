"""SegmentedTopN against a brute-force sort of everything offered (ties included)."""

from __future__ import annotations

import numpy as np
import pytest
from sae_core.cache.topn import SegmentedTopN


def _brute(n, N, dtype, offers, key_dtype=np.uint64):
    """Top N per segment of all offers, sorted by (order, key), full ties in arrival order."""
    empty = np.inf if np.dtype(dtype).kind == "f" else np.iinfo(dtype).max
    order = np.full((n, N), empty, dtype=dtype)
    key = np.zeros((n, N), dtype=key_dtype)
    val = np.zeros((n, N), dtype=np.float32)
    rows: list[list[tuple]] = [[] for _ in range(n)]
    arrival = 0
    for seg, o, k, v in offers:
        for s, oo, kk, vv in zip(seg, o.astype(dtype), k, v, strict=True):
            rows[int(s)].append((oo, int(kk), arrival, np.float32(vv)))
            arrival += 1
    for s, r in enumerate(rows):
        r.sort(key=lambda e: (e[0], e[1], e[2]))
        for j, (oo, kk, _, vv) in enumerate(r[:N]):
            order[s, j], key[s, j], val[s, j] = oo, kk, vv
    return order, key, val


@pytest.mark.parametrize(
    "dtype,key_dtype,store_val",
    [
        (np.float32, np.uint64, True),
        (np.uint64, np.uint64, True),
        (np.float32, np.uint32, False),  # the cache's top-N table: val = -order
        (np.uint32, np.uint32, True),  # the cache's reservoir table
    ],
)
@pytest.mark.parametrize("ties", [False, True])
def test_segmented_topn_equals_brute_force(dtype, key_dtype, store_val, ties):
    rng = np.random.default_rng(7 + ties)
    for trial in range(12):
        n, N = int(rng.integers(1, 30)), int(rng.integers(1, 10))
        t = SegmentedTopN(n, N, dtype, key_dtype, store_val)
        t.pending_limit = int(rng.integers(1, 300))  # exercise buffered and immediate merges
        offers = []
        for _ in range(int(rng.integers(1, 12))):
            m = int(rng.integers(0, 80))
            seg = rng.integers(0, n, m)
            if ties:
                o = rng.integers(0, 4, m)
                k = rng.integers(0, 5, m).astype(np.uint64)
            else:
                hi = 2**63 if dtype is np.uint64 else 2**32 - 1  # below the empty marker
                o = rng.standard_normal(m) if dtype is np.float32 else rng.integers(0, hi, m)
                k = rng.permutation(10**6)[:m].astype(np.uint64)
            o = o.astype(dtype)
            v = rng.standard_normal(m).astype(np.float32)
            if not store_val:
                v = -o
            offers.append((seg, o, k, v))
            t.update(seg, o, k, v)
            if trial % 3 == 0:  # reading merges the buffer early; the result must not change
                t.order  # noqa: B018
        if trial % 4 == 1:  # state round trip mid-stream
            st = t.state("x_")
            t = SegmentedTopN(n, N, dtype, key_dtype, store_val)
            t.load_state(st, "x_")
        ref = list(_brute(n, N, dtype, offers, key_dtype))
        if not store_val:  # no value column: val reads as -order (-inf in empty slots)
            ref[2] = np.where(np.isinf(ref[0]), -np.inf, ref[2]).astype(np.float32)
        for a, b in zip((t.order, t.key, t.val), ref, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
