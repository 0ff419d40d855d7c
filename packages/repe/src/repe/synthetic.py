"""Planted-direction synthetic contrast data (a toy stand-in, not model activations)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Planted:
    pos: np.ndarray
    neg: np.ndarray
    directions: np.ndarray  # (m, D) unit planted directions


def planted_pairs(
    n: int = 256,
    d: int = 64,
    *,
    n_directions: int = 1,
    strength: tuple[float, float] = (2.0, 4.0),
    noise: float = 0.5,
    eig: tuple[float, float] = (0.5, 9.0),
    seed: int = 0,
) -> Planted:
    """Pairs sharing an anisotropic base: ``x+- = base +- s u / 2 + noise``.

    base ~ N(0, Q diag(lambda) Q^T) with lambda ~ U(eig) and a random rotation Q; strength
    s ~ U(strength); isotropic noise with SD ``noise``. With ``n_directions=2`` each pair
    carries both directions with independent strengths (the second at 0.6x), for testing
    multi-component finders.
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = rng.uniform(*eig, size=d)
    base = (rng.standard_normal((n, d)) * np.sqrt(lam)) @ q.T
    dirs = np.linalg.qr(rng.standard_normal((d, n_directions)))[0].T
    shift = np.zeros((n, d))
    for j, u in enumerate(dirs):
        s = rng.uniform(*strength, size=n) * (1.0 if j == 0 else 0.6)
        if j > 0:
            s = s * rng.choice([-1.0, 1.0], size=n)
        shift += s[:, None] * u
    pos = base + shift / 2 + noise * rng.standard_normal((n, d))
    neg = base - shift / 2 + noise * rng.standard_normal((n, d))
    return Planted(pos=pos, neg=neg, directions=dirs)
