"""Decisions at level alpha with multiple-testing control over (station, decision time) pairs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import ConfigError
from .null import stationary_bootstrap_index
from .windows import select_stat, window_stats

CORRECTIONS = ("none", "bonferroni", "holm", "bh", "by", "maxt")


def adjust(p: np.ndarray, method: str = "bh") -> np.ndarray:
    """Adjusted p-values (q-values) over all finite entries of `p` (any shape); NaN stays NaN.

    bonferroni: min(1, m p); holm: step-down; bh: Benjamini-Hochberg step-up;
    by: Benjamini-Yekutieli (BH times sum 1/i). Reject where q <= alpha.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    v = p[ok]
    m = v.size
    if m == 0:
        return out
    if method == "none":
        q = v.copy()
    elif method == "bonferroni":
        q = np.minimum(1.0, v * m)
    elif method == "holm":
        order = np.argsort(v, kind="stable")
        adj = np.maximum.accumulate((m - np.arange(m)) * v[order])
        q = np.empty(m)
        q[order] = np.minimum(1.0, adj)
    elif method in ("bh", "by"):
        order = np.argsort(v, kind="stable")
        scale = np.sum(1.0 / np.arange(1, m + 1)) if method == "by" else 1.0
        raw = v[order] * m * scale / np.arange(1, m + 1)
        adj = np.minimum.accumulate(raw[::-1])[::-1]
        q = np.empty(m)
        q[order] = np.minimum(1.0, adj)
    else:
        raise ConfigError(f"correction must be one of {CORRECTIONS}, got {method!r}.")
    out[ok] = q
    return out


def maxt_adjust(
    p: np.ndarray,
    e_calib: np.ndarray,
    k: int,
    stat: str,
    side: str,
    pvalue_fn: Callable[[np.ndarray, str], np.ndarray],
    n_decisions: int,
    stride: int | None = None,
    n_rep: int = 400,
    mean_block: float = 48.0,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """maxT (min-p) adjustment by a joint block bootstrap of all series over the calibration
    period with shared block starts (keeps the cross-series dependence).

    Returns (adjusted p, min-p threshold at the 5% level is not fixed here): the adjusted
    p-value of each p is the fraction of replicates whose family minimum p is <= p.
    """
    x = np.asarray(e_calib, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    stride = k if stride is None else stride
    rng = np.random.default_rng(seed)
    length = k - 1 + stride * max(1, n_decisions)
    idx = stationary_bootstrap_index(rng, x.shape[0], length, mean_block, n_rep)
    minp = np.empty(n_rep)
    for r in range(n_rep):
        rep = x[idx[r]]
        s = select_stat(window_stats(rep, k), stat)[k - 1 :: stride]
        pr = pvalue_fn(s, side)
        minp[r] = np.nanmin(pr) if np.isfinite(pr).any() else 1.0
    minp.sort()
    q = np.full(np.shape(p), np.nan)
    ok = np.isfinite(p)
    q[ok] = (np.searchsorted(minp, np.asarray(p)[ok], side="right") + 1) / (n_rep + 1)
    return np.minimum(q, 1.0), float(np.quantile(minp, 0.05))


def flags_from(q: np.ndarray, stat_z: np.ndarray, alpha: float, side: str) -> np.ndarray:
    """int8 flags: -1 low, +1 high, 0 none; `stat_z` gives the direction for two-sided tests."""
    rej = np.isfinite(q) & (q <= alpha)
    if side == "lower":
        sign = -1
        return np.where(rej, sign, 0).astype(np.int8)
    if side == "upper":
        return np.where(rej, 1, 0).astype(np.int8)
    return np.where(rej, np.sign(np.nan_to_num(stat_z)), 0).astype(np.int8)
