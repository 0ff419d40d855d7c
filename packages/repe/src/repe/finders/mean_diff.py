"""Mean of paired differences (CAA; steering-vectors ``mean``)."""

from __future__ import annotations

import numpy as np

from .base import Direction, check_pairs, unit


def fit_mean_diff(pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, **_: object) -> Direction:
    pos, neg = check_pairs(pos, neg, paired=True, layer=layer)
    delta_mean = (pos - neg).mean(0)
    r = unit(delta_mean)
    mu = (pos.mean(0) + neg.mean(0)) / 2
    return Direction(read=r[None], write=delta_mean[None], mu=mu, stats={"paired": True})
