"""PCA finders.

* ``pca_pm``: top eigenvector(s) of the uncentred second moment of the differences,
  ``(1/n) sum delta delta^T`` (= SVD of ``[delta; -delta]``); sign-symmetric, so the concept
  survives. ``k`` > 1 keeps the top k components, each signed.
* ``pca_repe``: RepE-faithful -- centred PCA of randomly re-signed differences ``s_i delta_i``
  (the seeded Rademacher shuffle of within-pair order), then RepE's sign rule.
"""

from __future__ import annotations

import numpy as np

from .base import (
    Direction,
    check_pairs,
    repe_sign,
    seeded_rng,
    signed_by_delta,
    unit,
    write_from_read,
)


def _top_right_singular(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    var = s**2 / max(len(x), 1)
    return vt[:k], var


def fit_pca_pm(
    pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, k: int = 1, **_: object
) -> Direction:
    pos, neg = check_pairs(pos, neg, paired=True, k=k, layer=layer)
    delta = pos - neg
    comps, var = _top_right_singular(delta, k)
    comps = np.stack([signed_by_delta(unit(c), delta) for c in comps])
    delta_mean = delta.mean(0)
    write = np.stack([write_from_read(c, delta_mean) for c in comps])
    mu = (pos.mean(0) + neg.mean(0)) / 2
    return Direction(
        read=comps,
        write=write,
        mu=mu,
        stats={"explained_variance": (var[:k] / var.sum()).tolist(), "k": k},
    )


def fit_pca_repe(
    pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, k: int = 1, seed: int = 0, **_: object
) -> Direction:
    from sklearn.decomposition import PCA

    pos, neg = check_pairs(pos, neg, paired=True, k=k, layer=layer)
    delta = pos - neg
    signs = seeded_rng(seed, layer).choice([-1.0, 1.0], size=len(delta))
    shuffled = delta * signs[:, None]
    pca = PCA(n_components=k).fit(shuffled)
    comps = []
    for c in pca.components_:
        c = unit(c)
        comps.append(c * repe_sign(c, pos, neg))
    comps_arr = np.stack(comps)
    delta_mean = delta.mean(0)
    write = np.stack([write_from_read(c, delta_mean) for c in comps_arr])
    mu = (pos.mean(0) + neg.mean(0)) / 2
    return Direction(
        read=comps_arr,
        write=write,
        mu=mu,
        stats={"explained_variance": pca.explained_variance_ratio_.tolist(), "k": k},
    )
