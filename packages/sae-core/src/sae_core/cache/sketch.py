"""Co-occurrence sketches: one-permutation MinHash of each latent's set of firing tokens.

Every global token id ``g`` is hashed once (the same hash for all latents); the hash's low bits
pick one of ``bins`` bins and its high 32 bits are the value; each latent keeps the minimum value
per bin (a ``scatter_reduce(amin)``). Two latents' Jaccard similarity |A ∩ B| / |A ∪ B| of their
token sets is estimated in O(bins) as the fraction of equal bins among the bins that are not
empty in both (Li, Owen & Zhang 2012, one permutation hashing). The standard error is about
sqrt(J(1 - J) / bins); 128 bins of uint32 are 512 B per latent (67 MB at 131k latents), instead of
a dense n x n co-occurrence matrix.
"""

from __future__ import annotations

import numpy as np

from sae_core.cache.topn import splitmix64

EMPTY = np.uint32(2**32 - 1)
_TOP = np.uint64(2**32 - 2)


class MinHashSketch:
    """``table`` [n, bins] uint32 bin minima (``EMPTY`` = no token in that bin)."""

    def __init__(self, n: int, bins: int = 128, seed: int = 0):
        if bins <= 0 or bins & (bins - 1):
            raise ValueError(f"bins must be a positive power of two, got {bins}")
        self.n, self.bins, self.seed = n, bins, seed
        self.table = np.full((n, bins), EMPTY, dtype=np.uint32)

    def nbytes(self) -> int:
        return self.table.nbytes

    def _hash(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = splitmix64(np.asarray(g, dtype=np.uint64) ^ np.uint64(self.seed ^ 0x5EED_C0_0C))
        b = (h & np.uint64(self.bins - 1)).astype(np.int64)
        v = np.minimum(h >> np.uint64(32), _TOP).astype(np.uint32)
        return b, v

    def update(self, lat: np.ndarray, g: np.ndarray) -> None:
        """Add tokens ``g`` to the sets of latents ``lat`` (pairs; any order, any batching)."""
        if lat.size == 0:
            return
        b, v = self._hash(g)
        np.minimum.at(self.table.reshape(-1), np.asarray(lat, dtype=np.int64) * self.bins + b, v)

    def jaccard(self, i: int, j: int) -> float:
        return float(jaccard_from_bins(self.table[i], self.table[j]))

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}minhash": self.table}

    def load_state(self, d: dict[str, np.ndarray], prefix: str) -> None:
        t = d[f"{prefix}minhash"]
        if t.shape != self.table.shape or t.dtype != np.uint32:
            raise ValueError(
                f"saved sketch is {t.dtype}{list(t.shape)}, expected uint32{list(self.table.shape)}"
            )
        self.table = np.array(t)


def jaccard_from_bins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard estimate from MinHash bins ``a``, ``b`` [..., bins] (broadcasts); 0 when both
    sets are empty."""
    both_empty = (a == EMPTY) & (b == EMPTY)
    match = (a == b) & ~both_empty
    used = (~both_empty).sum(axis=-1)
    return np.where(used > 0, match.sum(axis=-1) / np.maximum(used, 1), 0.0)
