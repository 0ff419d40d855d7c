"""Logistic-regression probe; the write vector is the Haufe activation pattern."""

from __future__ import annotations

import numpy as np

from .base import Direction, check_pairs, haufe_pattern, unit, write_from_read


def fit_logistic(
    pos: np.ndarray,
    neg: np.ndarray,
    *,
    layer: int = 0,
    paired: bool | None = None,
    C: float = 1.0,
    **_: object,
) -> Direction:
    """L2 logistic regression (C=1, lbfgs, max_iter 1000).

    Paired data is pair-centred (``x -/+ (x+ + x-)/2``) and fit without an intercept, as
    steering-vectors does; unpaired data gets an intercept.
    """
    from sklearn.linear_model import LogisticRegression

    if paired is None:
        paired = len(pos) == len(neg)
    pos, neg = check_pairs(pos, neg, paired=paired, layer=layer)
    if paired:
        mid = (pos + neg) / 2
        x = np.concatenate([pos - mid, neg - mid])
    else:
        x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    clf = LogisticRegression(C=C, solver="lbfgs", max_iter=1000, fit_intercept=not paired)
    clf.fit(x, y)
    r = unit(clf.coef_[0])
    pattern = haufe_pattern(x, r)
    if pattern @ r < 0:
        pattern = -pattern
    delta_mean = pos.mean(0) - neg.mean(0)
    mu = (pos.mean(0) + neg.mean(0)) / 2
    return Direction(
        read=r[None],
        write=write_from_read(pattern, delta_mean)[None],
        mu=mu,
        stats={"paired": paired, "train_acc": float(clf.score(x, y))},
    )
