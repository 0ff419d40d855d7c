"""Co-occurrence neighbours from a sparse binary window x latent matrix, computed blockwise."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class CooccurrenceIndex:
    """``C = AᵀA`` restricted to the requested columns, Jaccard ``C_ij/(C_ii+C_jj-C_ij)``, top-k kept.

    ``values`` holds each latent's maximum activation per pool window (A is its support), so
    neighbour windows can be ranked without touching the cache again. Memory is O(nnz(A) + k·n),
    never n x n.
    """

    def __init__(self, values: sp.csc_matrix, top: int = 250, block: int = 4096) -> None:
        self.values = sp.csc_matrix(values, dtype=np.float32)
        self.values.eliminate_zeros()
        a = self.values.copy()
        a.data[:] = 1.0
        self.A = a.tocsr()
        self.A_csc = a
        self.counts = np.asarray(a.sum(axis=0)).ravel()
        self.top = top
        self.block = block
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def neighbours(self, latent: int) -> tuple[np.ndarray, np.ndarray]:
        if latent not in self._cache:
            self.compute([latent])
        return self._cache[latent]

    def compute(self, latents: list[int]) -> None:
        todo = [i for i in latents if i not in self._cache]
        for b0 in range(0, len(todo), self.block):
            cols = todo[b0 : b0 + self.block]
            c = (self.A.T @ self.A_csc[:, cols]).tocsc()  # [n_latents, len(cols)] sparse
            for k, i in enumerate(cols):
                lo, hi = c.indptr[k], c.indptr[k + 1]
                js, cij = c.indices[lo:hi], c.data[lo:hi]
                keep = js != i
                js, cij = js[keep], cij[keep]
                jac = cij / (self.counts[i] + self.counts[js] - cij)
                order = np.lexsort((js, -jac))[: self.top]
                self._cache[i] = (js[order].astype(np.int64), jac[order].astype(np.float64))

    def top_windows(self, j: int, n: int, forbidden: np.ndarray) -> list[int]:
        """The ``n`` pool windows where latent ``j`` is strongest, skipping ``forbidden`` windows."""
        lo, hi = self.values.indptr[j], self.values.indptr[j + 1]
        rows, vals = self.values.indices[lo:hi], self.values.data[lo:hi]
        ok = ~np.isin(rows, forbidden)
        rows, vals = rows[ok], vals[ok]
        return [int(r) for r in rows[np.argsort(-vals, kind="stable")][:n]]
