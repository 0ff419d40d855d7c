"""Direction finders: ``FINDERS[name](pos, neg, layer=..., seed=..., k=...) -> Direction``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import unknown
from .base import Direction, check_k, haufe_pattern
from .cluster import fit_cluster_mean
from .compat import fit_repeng_pca_diff, fit_umap
from .lda import fit_lda
from .leace import fit_leace, leace_erase
from .mean_diff import fit_mean_diff
from .pca import fit_pca_pm, fit_pca_repe
from .probe import fit_logistic
from .random import fit_random
from .sae import fit_direction_sae

Finder = Callable[..., Direction]

FINDERS: dict[str, Finder] = {
    "mean_diff": fit_mean_diff,
    "pca_repe": fit_pca_repe,
    "pca_pm": fit_pca_pm,
    "pca_k": fit_pca_pm,
    "logistic": fit_logistic,
    "lda": fit_lda,
    "whitened": fit_lda,
    "cluster_mean": fit_cluster_mean,
    "random": fit_random,
    "leace": fit_leace,
    "repeng_pca_diff": fit_repeng_pca_diff,
    "umap": fit_umap,
}

#: methods that need one negative per positive
PAIRED_METHODS = {"mean_diff", "pca_repe", "pca_pm", "pca_k", "repeng_pca_diff", "umap"}


def get_finder(name: str) -> Finder:
    if name not in FINDERS:
        raise unknown("method", name, FINDERS)
    return FINDERS[name]


def fit_direction(
    name: str, pos: np.ndarray, neg: np.ndarray, *, layer: int = 0, seed: int = 0, k: int = 1
) -> Direction:
    finder = get_finder(name)
    k = check_k(k)
    if name == "pca_k" and k == 1:
        k = 2
    return finder(pos, neg, layer=layer, seed=seed, k=k)


__all__ = [
    "FINDERS",
    "PAIRED_METHODS",
    "Direction",
    "fit_direction",
    "fit_direction_sae",
    "get_finder",
    "haufe_pattern",
    "leace_erase",
]
