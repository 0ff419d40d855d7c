"""Linear discriminant / whitened mean difference: ``r ~ Sigma_w^{-1} mean_diff``.

Sigma_w is the pooled within-class covariance with Ledoit-Wolf shrinkage; solved in the
Gram matrix when n < D (never a D x D matrix above D = 4096). The write vector is the
plain mean difference (the covector is for reading; the pattern for writing).
"""

from __future__ import annotations

import numpy as np

from .base import Direction, check_pairs, shrunk_solve, unit


def _ledoit_wolf_shrinkage(xc: np.ndarray) -> tuple[float, float]:
    from sklearn.covariance import ledoit_wolf_shrinkage

    n, d = xc.shape
    target = float((xc**2).sum() / (n * d))
    shrink = float(ledoit_wolf_shrinkage(xc, assume_centered=True, block_size=1000))
    return shrink, target


def fit_lda(pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, **_: object) -> Direction:
    pos, neg = check_pairs(pos, neg, paired=False, layer=layer)
    mp, mn = pos.mean(0), neg.mean(0)
    diff = mp - mn
    xc = np.concatenate([pos - mp, neg - mn])
    shrink, target = _ledoit_wolf_shrinkage(xc)
    r = unit(shrunk_solve(xc, diff, shrink, target))
    if r @ diff < 0:
        r = -r
    return Direction(read=r[None], write=diff[None], mu=(mp + mn) / 2, stats={"shrinkage": shrink})
