"""Per-latent bootstrap confidence intervals (stratified by class; percentile method)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from autointerp.metrics import auroc_batch, pearson_r

B_DEFAULT = 1000


def _stratified_indices(labels: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    y = np.asarray(labels).astype(bool)
    groups = [np.flatnonzero(y), np.flatnonzero(~y)]
    cols = [g[rng.integers(0, len(g), size=(b, len(g)))] for g in groups if len(g)]
    return np.concatenate(cols, axis=1)


def _percentile(vals: np.ndarray, level: float) -> tuple[float, float]:
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def bootstrap_auroc(
    labels: np.ndarray,
    scores: np.ndarray,
    rng: np.random.Generator,
    b: int = B_DEFAULT,
    level: float = 0.95,
) -> tuple[float, float]:
    y = np.asarray(labels).astype(bool)
    if y.all() or not y.any():
        return math.nan, math.nan
    idx = _stratified_indices(y, b, rng)
    vals = auroc_batch(y[idx], np.asarray(scores, dtype=float)[idx])
    return _percentile(vals, level)


def bootstrap_balanced_accuracy(
    labels: np.ndarray,
    preds: np.ndarray,
    rng: np.random.Generator,
    b: int = B_DEFAULT,
    level: float = 0.95,
) -> tuple[float, float]:
    y = np.asarray(labels).astype(bool)
    p = np.asarray(preds).astype(bool)
    if y.all() or not y.any():
        return math.nan, math.nan
    idx = _stratified_indices(y, b, rng)
    yy, pp = y[idx], p[idx]
    tpr = (yy & pp).sum(1) / yy.sum(1)
    tnr = (~yy & ~pp).sum(1) / (~yy).sum(1)
    return _percentile((tpr + tnr) / 2, level)


def bootstrap_mean(
    values: np.ndarray, rng: np.random.Generator, b: int = B_DEFAULT, level: float = 0.95
):
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return math.nan, math.nan
    idx = rng.integers(0, len(v), size=(b, len(v)))
    return _percentile(v[idx].mean(axis=1), level)


def bootstrap_grouped(
    groups: list[tuple[np.ndarray, np.ndarray]],
    stat: Callable[[np.ndarray, np.ndarray], float],
    rng: np.random.Generator,
    b: int = B_DEFAULT,
    level: float = 0.95,
) -> tuple[float, float]:
    """Resample whole groups (e.g. simulation windows), concatenate, apply ``stat``."""
    if not groups:
        return math.nan, math.nan
    vals = np.empty(b)
    for i in range(b):
        pick = rng.integers(0, len(groups), size=len(groups))
        x = np.concatenate([groups[j][0] for j in pick])
        y = np.concatenate([groups[j][1] for j in pick])
        vals[i] = stat(x, y)
    return _percentile(vals, level)


def bootstrap_pearson(groups, rng, b: int = B_DEFAULT, level: float = 0.95):
    return bootstrap_grouped(groups, pearson_r, rng, b, level)
