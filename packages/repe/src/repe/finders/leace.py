"""Rank-1 LEACE-style eraser (Belrose et al. 2023) for a binary concept.

Sigma = cov(x) + 1e-6 (tr/D) I,  b = cov(x, z),  f = Sigma^{-1} b / (b^T Sigma^{-1} b).
The eraser ``E(h) = h - b f^T (h - mu)`` makes ``cov(E(x), z) = 0``. The read covector is
f (normalised); the write vector is b rescaled to diff units.
"""

from __future__ import annotations

import numpy as np

from .base import Direction, check_pairs, shrunk_solve, unit, write_from_read


def fit_leace(
    pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, ridge: float = 1e-6, **_: object
) -> Direction:
    pos, neg = check_pairs(pos, neg, paired=False, layer=layer)
    x = np.concatenate([pos, neg])
    z = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    mu_x = x.mean(0)
    xc = x - mu_x
    n, d = xc.shape
    b = xc.T @ (z - z.mean()) / n
    tr = float((xc**2).sum() / n)
    # (1-a) S + a t I with a t = ridge * tr / d and (1-a) = 1 -> use a tiny shrink form
    lam = ridge * tr / d
    sol = shrunk_solve(xc, b, shrink=lam / (1.0 + lam), target=1.0)
    sol = sol / (1.0 + lam)  # undo the (1-a) scaling so that (S + lam I) sol = b
    f = sol / float(b @ sol)
    delta_mean = pos.mean(0) - neg.mean(0)
    bu = unit(b)
    if bu @ delta_mean < 0:
        bu = -bu
    r = unit(f)
    if r @ delta_mean < 0:
        r = -r
    return Direction(
        read=r[None],
        write=write_from_read(bu, delta_mean)[None],
        mu=(pos.mean(0) + neg.mean(0)) / 2,
        stats={"eraser_b": b, "eraser_f": f, "eraser_mu": mu_x},
    )


def leace_erase(h: np.ndarray, b: np.ndarray, f: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Apply the rank-1 eraser ``h - b f^T (h - mu)`` to rows of h."""
    return h - np.outer((h - mu) @ f, b)
