"""Seeded random baseline direction, scaled to the norm of the mean difference."""

from __future__ import annotations

import numpy as np

from .base import Direction, check_pairs, seeded_rng, unit


def fit_random(
    pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, seed: int = 0, **_: object
) -> Direction:
    pos, neg = check_pairs(pos, neg, paired=False, layer=layer)
    diff = pos.mean(0) - neg.mean(0)
    r = unit(seeded_rng(seed, layer).standard_normal(pos.shape[1]))
    mu = (pos.mean(0) + neg.mean(0)) / 2
    return Direction(
        read=r[None], write=(np.linalg.norm(diff) * r)[None], mu=mu, stats={"seed": seed}
    )
