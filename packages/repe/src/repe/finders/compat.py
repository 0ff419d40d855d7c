"""Compatibility finders, for parity with other libraries only (they are flawed; see README).

* ``repeng_pca_diff``: centred PCA of fixed-order differences (repeng's and IBM's default).
  Centring subtracts the mean difference, i.e. the concept itself, so what remains is the
  variance of the concept strength plus noise.
* ``umap``: repeng's UMAP reduction (needs ``umap-learn``).
"""

from __future__ import annotations

import warnings

import numpy as np

from .base import Direction, check_pairs, repe_sign, unit, write_from_read


def _warn(name: str) -> None:
    warnings.warn(
        f"finder {name!r} is provided for parity with other libraries and is known to lose the "
        "concept direction; prefer 'pca_pm' or 'mean_diff'",
        UserWarning,
        stacklevel=3,
    )


def fit_repeng_pca_diff(
    pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, **_: object
) -> Direction:
    from sklearn.decomposition import PCA

    _warn("repeng_pca_diff")
    pos, neg = check_pairs(pos, neg, paired=True, layer=layer)
    delta = pos - neg
    c = unit(PCA(n_components=1).fit(delta).components_[0])
    c = c * repe_sign(c, pos, neg)
    return Direction(
        read=c[None],
        write=write_from_read(c, delta.mean(0))[None],
        mu=(pos.mean(0) + neg.mean(0)) / 2,
    )


def fit_umap(
    pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, seed: int = 0, **_: object
) -> Direction:
    _warn("umap")
    try:
        import umap  # type: ignore[import-not-found]
    except ImportError as e:  # pragma: no cover - optional
        raise ImportError(
            "finder 'umap' needs umap-learn: pip install umap-learn (or use 'pca_pm')"
        ) from e
    pos, neg = check_pairs(pos, neg, paired=True, layer=layer)
    delta = pos - neg
    emb = umap.UMAP(n_components=1, random_state=seed).fit_transform(delta)[:, 0]
    c = unit(np.sum(delta * emb[:, None], axis=0))
    c = c * repe_sign(c, pos, neg)
    return Direction(
        read=c[None],
        write=write_from_read(c, delta.mean(0))[None],
        mu=(pos.mean(0) + neg.mean(0)) / 2,
    )
