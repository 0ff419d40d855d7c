"""Difference of class means for unpaired data (RepE ``cluster_mean``)."""

from __future__ import annotations

import numpy as np

from .base import Direction, check_pairs, unit


def fit_cluster_mean(pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, **_: object) -> Direction:
    pos, neg = check_pairs(pos, neg, paired=False, layer=layer)
    diff = pos.mean(0) - neg.mean(0)
    mu = (pos.mean(0) + neg.mean(0)) / 2
    return Direction(read=unit(diff)[None], write=diff[None], mu=mu, stats={"paired": False})
