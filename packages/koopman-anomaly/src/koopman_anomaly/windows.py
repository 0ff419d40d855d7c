"""Trailing-window statistics from cumulative sums: O(N), NaN-aware, vectorised over series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass
class WindowStats:
    """Statistics of the trailing window (t-k, t], labelled at its end t (axis 0 is time)."""

    mean: np.ndarray
    msq: np.ndarray
    count: np.ndarray
    coverage: np.ndarray


def _lagged_diff(c: np.ndarray, k: int) -> np.ndarray:
    """c[t] - c[t-k] with c[-1] = 0 (c is an inclusive cumulative sum along axis 0)."""
    out = c.copy()
    out[k:] -= c[:-k]
    return out


def window_stats(
    e: np.ndarray, k: int, min_coverage: float = 0.75, msq: bool = True
) -> WindowStats:
    """Mean and mean square of valid points in each trailing window of length k.

    Windows with coverage n_t/k < `min_coverage` (including the first k-1 incomplete ones)
    are NaN and can never be flagged.
    """
    try:
        whole = not isinstance(k, bool) and float(k).is_integer() and k >= 1
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ConfigError(f"window length k must be a whole number of steps >= 1, got {k!r}.")
    k = int(k)
    x = np.asarray(e, dtype=np.float64)
    valid = np.isfinite(x)
    x0 = np.where(valid, x, 0.0)
    c1 = np.cumsum(x0, axis=0)
    cn = np.cumsum(valid, axis=0, dtype=np.int64)
    s1 = _lagged_diff(c1, k)
    del c1
    n = _lagged_diff(cn, k).astype(np.float64)
    del cn
    coverage = n / k
    ok = coverage >= min_coverage
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, s1 / n, np.nan)
        if msq:
            s2 = _lagged_diff(np.cumsum(x0 * x0, axis=0), k)
            out_msq = np.where(ok, s2 / n, np.nan)
        else:
            out_msq = np.full(0, np.nan)
    return WindowStats(mean=mean, msq=out_msq, count=n, coverage=coverage)


def select_stat(ws: WindowStats, stat: str) -> np.ndarray:
    if stat == "mean":
        return ws.mean
    if stat == "msq":
        return ws.msq
    raise ConfigError(f"stat must be 'mean' or 'msq', got {stat!r}.")


def decision_index(
    n_time: int, start: int, stop: int, k: int, stride: int | None = None
) -> np.ndarray:
    """Decision times in [start, stop): window ends start+k-1, start+k-1+stride, ...

    With stride=k (default) the windows are non-overlapping and lie inside [start, stop).
    """
    stride = k if stride is None else stride
    if stride < 1:
        raise ConfigError(f"stride must be >= 1, got {stride}.")
    first = start + k - 1
    stop = min(stop, n_time)
    return np.arange(first, stop, stride, dtype=np.int64)
