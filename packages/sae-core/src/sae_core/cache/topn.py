"""Per-latent bounded "best N" tables updated in O(m log m) per batch (no Python loop over latents)."""

from __future__ import annotations

import numpy as np

_U64_MAX = np.iinfo(np.uint64).max


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def window_hash(seed: int, latent: np.ndarray | int, window: np.ndarray | int) -> np.ndarray:
    """h(seed, latent, window) ∈ [0, 2⁶⁴): independent of batch order and sharding."""
    a = splitmix64(np.asarray(latent, dtype=np.uint64) ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    return splitmix64(a ^ splitmix64(np.asarray(window, dtype=np.uint64)))


class SegmentedTopN:
    """For each of ``n`` segments keep the ``N`` entries with the smallest ``order`` (ties: smaller key).

    Arrays: ``order`` [n, N] (float32 or uint64; empty slots hold the dtype's maximum), ``key``
    [n, N] uint64, ``val`` [n, N] float32. Slots are sorted ascending by (order, key).
    """

    def __init__(self, n: int, N: int, order_dtype: type = np.float32):
        self.n, self.N = n, N
        self.order_dtype = np.dtype(order_dtype)
        self.empty = np.inf if self.order_dtype.kind == "f" else _U64_MAX
        self.order = np.full((n, N), self.empty, dtype=self.order_dtype)
        self.key = np.zeros((n, N), dtype=np.uint64)
        self.val = np.zeros((n, N), dtype=np.float32)

    def nbytes(self) -> int:
        return self.order.nbytes + self.key.nbytes + self.val.nbytes

    def update(self, seg: np.ndarray, order: np.ndarray, key: np.ndarray, val: np.ndarray) -> None:
        """Offer candidates (one per distinct (seg, key))."""
        if seg.size == 0:
            return
        order = order.astype(self.order_dtype, copy=False)
        worst = self.order[seg, -1]
        wkey = self.key[seg, -1]
        ok = (order < worst) | ((order == worst) & (key < wkey))
        if not ok.any():
            return
        seg, order, key, val = seg[ok], order[ok], key[ok], val[ok]
        touched = np.unique(seg)
        old_o = self.order[touched]
        filled = old_o != self.empty
        old_seg = np.broadcast_to(touched[:, None], old_o.shape)[filled]
        all_seg = np.concatenate([old_seg, seg])
        all_o = np.concatenate([old_o[filled], order])
        all_k = np.concatenate([self.key[touched][filled], key.astype(np.uint64)])
        all_v = np.concatenate([self.val[touched][filled], val.astype(np.float32)])
        idx = np.lexsort((all_k, all_o, all_seg))
        s_seg = all_seg[idx]
        starts = np.flatnonzero(np.r_[True, s_seg[1:] != s_seg[:-1]])
        lens = np.diff(np.r_[starts, s_seg.size])
        rank = np.arange(s_seg.size) - np.repeat(starts, lens)
        keep = rank < self.N
        idx, s_seg, rank = idx[keep], s_seg[keep], rank[keep]
        self.order[touched] = self.empty
        self.key[touched] = 0
        self.val[touched] = 0
        self.order[s_seg, rank] = all_o[idx]
        self.key[s_seg, rank] = all_k[idx]
        self.val[s_seg, rank] = all_v[idx]

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}order": self.order, f"{prefix}key": self.key, f"{prefix}val": self.val}

    def load_state(self, d: dict[str, np.ndarray], prefix: str) -> None:
        self.order = np.array(d[f"{prefix}order"])
        self.key = np.array(d[f"{prefix}key"])
        self.val = np.array(d[f"{prefix}val"])
