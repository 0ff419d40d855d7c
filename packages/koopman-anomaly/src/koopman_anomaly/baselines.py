"""Baselines run side by side with the detector. Each returns a `BaselineResult` with a
per-time score oriented so that larger means more anomalous in the tested direction, and the
baseline's own default flags (so results can be shown at default and at matched-FAR thresholds).

- `zscore`: residual from the training hour-of-week climatology / training SD; flag |z| > 3.
- `level_shift`: ADTK LevelShiftAD semantics, causal: difference of medians of the two adjacent
  trailing windows of w steps; flag when |d| > Q3 + c IQR of training |d| (c = 6) with sign check.
- `seasonal_esd`: S-H-ESD style: per 2-week piece, a robust seasonal profile (median by phase)
  and the piece median are removed, then generalised ESD on median/MAD (max_anoms 2%, alpha).
  The seasonal component is a per-phase median, not STL (documented simplification).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps


@dataclass
class BaselineResult:
    score: np.ndarray  # (T,) or (T, S); larger = more anomalous in the tested direction
    flag: np.ndarray  # bool, default thresholds
    threshold: float | np.ndarray


def _orient(x: np.ndarray, side: str) -> np.ndarray:
    if side == "lower":
        return -x
    if side == "upper":
        return x
    return np.abs(x)


def _cols(x: np.ndarray) -> tuple[np.ndarray, bool]:
    a = np.asarray(x, dtype=float)
    return (a[:, None], True) if a.ndim == 1 else (a, False)


def zscore(
    x: np.ndarray,
    times: pd.DatetimeIndex,
    train: np.ndarray,
    side: str = "both",
    threshold: float = 3.0,
    period: int | None = None,
) -> BaselineResult:
    """Climatology by hour of week (or by phase t mod `period` for step-indexed series)."""
    a, one = _cols(x)
    if period is None:
        how, n_phase = np.asarray(times.dayofweek * 24 + times.hour), 168
    else:
        how, n_phase = np.arange(len(times)) % period, period
    z = np.full(a.shape, np.nan)
    for j in range(a.shape[1]):
        col = a[:, j]
        tr = train & np.isfinite(col)
        clim = pd.Series(col[tr]).groupby(how[tr]).mean().reindex(range(n_phase)).to_numpy()
        clim = np.where(np.isfinite(clim), clim, np.nanmean(col[tr]))
        r = col - clim[how]
        z[:, j] = r / np.nanstd(r[tr])
    s = _orient(z, side)
    out = BaselineResult(s, s > threshold, threshold)
    return _squeeze(out, one)


def _rolling_median(col: np.ndarray, w: int) -> np.ndarray:
    return pd.Series(col).rolling(w, min_periods=max(1, w // 2)).median().to_numpy()


def level_shift(
    x: np.ndarray, train: np.ndarray, window: int = 168, c: float = 6.0, side: str = "both"
) -> BaselineResult:
    a, one = _cols(x)
    d = np.full(a.shape, np.nan)
    th = np.zeros(a.shape[1])
    for j in range(a.shape[1]):
        m = _rolling_median(a[:, j], window)
        dj = m.copy()
        dj[window:] = m[window:] - m[:-window]
        dj[:window] = np.nan
        d[:, j] = dj
        ad = np.abs(dj[train & np.isfinite(dj)])
        q1, q3 = np.quantile(ad, [0.25, 0.75]) if ad.size else (0.0, 0.0)
        th[j] = q3 + c * (q3 - q1)
    s = _orient(d, side)
    out = BaselineResult(s, s > th, th)
    return _squeeze(out, one)


def _esd_flags(r: np.ndarray, max_frac: float, alpha: float) -> np.ndarray:
    """Generalised ESD (Rosner) with median/MAD, returning a boolean mask of outliers."""
    ok = np.flatnonzero(np.isfinite(r))
    n = ok.size
    flags = np.zeros(r.shape, dtype=bool)
    if n < 10:
        return flags
    kmax = max(1, int(max_frac * n))
    vals = r[ok].copy()
    idx = ok.copy()
    removed = []
    n_out = 0
    for i in range(1, kmax + 1):
        med = np.median(vals)
        mad = 1.4826 * np.median(np.abs(vals - med))
        if mad <= 0:
            break
        dev = np.abs(vals - med) / mad
        m = int(np.argmax(dev))
        R = dev[m]
        nn = n - i + 1
        pcrit = 1 - alpha / (2 * nn)
        t = sps.t.ppf(pcrit, nn - 2)
        lam = (nn - 1) * t / np.sqrt((nn - 2 + t * t) * nn)
        removed.append(idx[m])
        if lam < R:
            n_out = i
        vals = np.delete(vals, m)
        idx = np.delete(idx, m)
    flags[np.asarray(removed[:n_out], dtype=int)] = True
    return flags


def seasonal_esd(
    x: np.ndarray,
    times: pd.DatetimeIndex,
    period: int = 24,
    piece: int = 336,
    max_anoms: float = 0.02,
    alpha: float = 0.05,
    side: str = "both",
) -> BaselineResult:
    a, one = _cols(x)
    score = np.full(a.shape, np.nan)
    flag = np.zeros(a.shape, dtype=bool)
    phase = np.asarray(times.hour) % period if period == 24 else np.arange(len(times)) % period
    for j in range(a.shape[1]):
        col = a[:, j]
        for s0 in range(0, len(col), piece):
            seg = slice(s0, min(len(col), s0 + piece))
            v = col[seg]
            if np.isfinite(v).sum() < period * 2:
                continue
            ph = phase[seg]
            med = np.nanmedian(v)
            prof = pd.Series(v - med).groupby(ph).median()
            r = v - med - prof.reindex(ph).to_numpy()
            mad = 1.4826 * np.nanmedian(np.abs(r - np.nanmedian(r)))
            rz = (r - np.nanmedian(r)) / max(mad, 1e-12)
            score[seg, j] = _orient(rz, side)
            f = _esd_flags(r, max_anoms, alpha)
            if side == "lower":
                f &= rz < 0
            elif side == "upper":
                f &= rz > 0
            flag[seg, j] = f
    out = BaselineResult(score, flag, np.nan)
    return _squeeze(out, one)


def _squeeze(r: BaselineResult, one: bool) -> BaselineResult:
    if one:
        r.score = r.score[:, 0]
        r.flag = r.flag[:, 0]
    return r
