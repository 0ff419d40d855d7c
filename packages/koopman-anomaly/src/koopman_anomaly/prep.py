"""Preprocessing: log transform with an explicit floor policy, reference alignment, station QC
and haversine DBSCAN clusters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import ConfigError

EARTH_RADIUS_KM = 6371.0088


@dataclass
class TransformResult:
    values: np.ndarray
    n_nonpositive: np.ndarray  # per series
    floor_value: np.ndarray  # per series (NaN for mask)


def transform_values(x: np.ndarray, transform: str = "log", floor: str = "mask") -> TransformResult:
    """log with non-positive values masked (`floor="mask"`) or set to half the smallest positive
    value of that series (`"half_min"`). Never 1e-20. Gaps stay NaN; nothing is imputed."""
    a = np.asarray(x, dtype=float)
    two = a.reshape(a.shape[0], -1)
    nonpos = np.isfinite(two) & (two <= 0)
    nfloor = np.full(two.shape[1], np.nan)
    if transform == "none":
        return TransformResult(a.copy(), np.zeros(two.shape[1], dtype=int), nfloor)
    if transform != "log":
        raise ConfigError(f"transform must be 'log' or 'none', got {transform!r}.")
    out = two.copy()
    if floor == "mask":
        out[nonpos] = np.nan
    elif floor == "half_min":
        pos = np.where(two > 0, two, np.inf)
        mins = pos.min(axis=0)
        nfloor = np.where(np.isfinite(mins), mins / 2, np.nan)
        out = np.where(nonpos, nfloor[None, :], out)
    else:
        raise ConfigError(f"floor must be 'mask' or 'half_min', got {floor!r}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.log(out)
    return TransformResult(out.reshape(a.shape), nonpos.sum(0).reshape(a.shape[1:]), nfloor)


def align_reference(ref: np.ndarray, times: pd.DatetimeIndex, offset: str = "0min") -> np.ndarray:
    """Shift a reference by `offset` (e.g. "-30min" for GEOS-CF) onto `times`, interpolating
    linearly only across gaps of at most one step; longer gaps stay NaN."""
    off = pd.Timedelta(offset)
    a = np.asarray(ref, dtype=float)
    if off == pd.Timedelta(0):
        return a.copy()
    t = np.asarray(times.asi8, dtype=float)
    src = t + off.value
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    out = np.full(a.shape, np.nan)
    two = a.reshape(a.shape[0], -1)
    o2 = out.reshape(a.shape[0], -1)
    for j in range(two.shape[1]):
        ok = np.isfinite(two[:, j])
        if ok.sum() < 2:
            continue
        ts, vs = src[ok], two[ok, j]
        o2[:, j] = np.interp(t, ts, vs, left=np.nan, right=np.nan)
        pos = np.searchsorted(ts, t)
        lo = np.clip(pos - 1, 0, ts.size - 1)
        hi = np.clip(pos, 0, ts.size - 1)
        gap = ts[hi] - ts[lo]
        o2[gap > 2 * step + 1e-9, j] = np.nan
    return out


def coverage(x: np.ndarray, times: pd.DatetimeIndex) -> np.ndarray:
    """n_obs / hours spanned, per series."""
    a = np.asarray(x, dtype=float).reshape(len(times), -1)
    hours = max(1.0, (times[-1] - times[0]) / pd.Timedelta("1h") + 1)
    return np.isfinite(a).sum(0) / hours


def haversine_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dphi = p2 - p1
    dl = np.deg2rad(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def dbscan_haversine(
    lat: np.ndarray, lon: np.ndarray, eps_km: float = 500.0, min_samples: int = 4
) -> np.ndarray:
    """DBSCAN on great-circle distance in km; labels 0..K-1, noise -1."""
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    n = lat.size
    D = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    nbrs = [np.flatnonzero(D[i] <= eps_km) for i in range(n)]
    core = np.array([len(nb) >= min_samples for nb in nbrs])
    labels = np.full(n, -1)
    cur = 0
    for i in range(n):
        if labels[i] != -1 or not core[i]:
            continue
        labels[i] = cur
        stack = list(nbrs[i])
        while stack:
            j = stack.pop()
            if labels[j] == -1:
                labels[j] = cur
                if core[j]:
                    stack.extend(nbrs[j])
        cur += 1
    return labels
