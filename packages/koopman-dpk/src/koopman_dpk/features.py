"""Input coercion: targets and covariates from numpy, pandas or xarray, with clear errors."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import DPKInputError
from .forecast import OutputSpec


@dataclass
class Target:
    y: np.ndarray  # (T, d) float64
    times: Any  # DatetimeIndex or 1-D numeric array, or None (steps)
    output: OutputSpec


def _is_xarray(obj: Any) -> bool:
    return type(obj).__module__.startswith("xarray")


@contextmanager
def _numeric(what: str) -> Iterator[None]:
    """numpy's "could not convert string to float" becomes an error that names the input."""
    try:
        yield
    except DPKInputError:
        raise
    except (TypeError, ValueError) as exc:
        raise DPKInputError(
            f"{what} must be numeric; converting it to float failed ({exc}). Convert the "
            "column first, e.g. pd.to_numeric(..., errors='coerce') to turn bad entries into NaN."
        ) from exc


def coerce_target(y: Any, times: Any = None, series_dim: str | None = None) -> Target:
    """(T, d) float array, its times and the output spec, from ndarray / pandas / xarray."""
    with _numeric("y"):
        target = _coerce_target(y, times, series_dim)
    if len(target.y) == 0:
        raise DPKInputError("y is empty; pass a series with data.")
    return target


def _coerce_target(y: Any, times: Any, series_dim: str | None) -> Target:
    if isinstance(y, pd.Series):
        out = OutputSpec(
            "pandas", name=y.name, columns=[str(y.name) if y.name is not None else "y"]
        )
        t = y.index if times is None else times
        arr = y.to_numpy(dtype=float)[:, None]
        if (
            times is None
            and not isinstance(y.index, pd.DatetimeIndex)
            and isinstance(y.index, pd.RangeIndex)
        ):
            t = None
    elif isinstance(y, pd.DataFrame):
        out = OutputSpec("pandas", columns=[str(c) for c in y.columns])
        t = y.index if times is None else times
        arr = y.to_numpy(dtype=float)
        if times is None and isinstance(y.index, pd.RangeIndex):
            t = None
    elif _is_xarray(y) and hasattr(y, "dims"):
        if hasattr(y, "data_vars"):
            raise DPKInputError("pass a DataArray (e.g. ds['load']), not a Dataset, as y.")
        if "time" not in y.dims:
            raise DPKInputError(f"xarray y needs a 'time' dimension; it has {list(y.dims)}.")
        other = [d for d in y.dims if d != "time"]
        if len(other) > 1:
            if series_dim is None:
                raise DPKInputError(
                    f"y has several non-time dims {other}; stack them into one and pass series_dim=..."
                )
            raise DPKInputError(f"y has dims {list(y.dims)}; only one non-time dim is supported.")
        sd = other[0] if other else None
        yt = y.transpose("time", *other)
        arr = np.asarray(yt.values, dtype=float).reshape(yt.sizes["time"], -1)
        cols = [str(v) for v in yt[sd].values] if sd else [str(y.name or "y")]
        out = OutputSpec("xarray", columns=cols, series_dim=sd, name=y.name)
        t = y["time"].values if times is None else times
    else:
        arr = np.asarray(y, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise DPKInputError(f"y must be 1-D (T,) or 2-D (T, d); got shape {arr.shape}")
        out = OutputSpec(
            "numpy", columns=None if arr.shape[1] == 1 else [f"y{j}" for j in range(arr.shape[1])]
        )
        t = times
    if t is not None and len(t) != len(arr):
        raise DPKInputError(
            f"times has {len(t)} entries but y has {len(arr)} rows; they must match."
        )
    return Target(arr, t, out)


def coerce_covariates(
    cov: Any, n: int, names: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """(n, C) float covariates and their names; checks length, NaN and (at predict) names."""
    with _numeric("covariates"):
        return _coerce_covariates(cov, n, names)


def _coerce_covariates(cov: Any, n: int, names: list[str] | None) -> tuple[np.ndarray, list[str]]:
    if cov is None:
        if names:
            raise DPKInputError(
                f"the model was fitted with covariates {names}; pass their values at these times."
            )
        return np.zeros((n, 0)), []
    if isinstance(cov, pd.Series):
        arr, got = cov.to_numpy(dtype=float)[:, None], [str(cov.name or "x0")]
    elif isinstance(cov, pd.DataFrame):
        arr, got = cov.to_numpy(dtype=float), [str(c) for c in cov.columns]
    elif _is_xarray(cov) and hasattr(cov, "data_vars"):
        got = [str(v) for v in cov.data_vars]
        arr = np.stack([np.asarray(cov[v].values, dtype=float).reshape(-1) for v in got], axis=1)
    elif isinstance(cov, Mapping):
        got = [str(k) for k in cov]
        arr = np.stack([np.asarray(v, dtype=float).reshape(-1) for v in cov.values()], axis=1)
    else:
        arr = np.asarray(getattr(cov, "values", cov), dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        got = (
            [str(getattr(cov, "name", None) or f"x{j}") for j in range(arr.shape[1])]
            if arr.shape[1] > 1 or not hasattr(cov, "name")
            else [str(cov.name)]
        )
        if names is not None and len(names) == arr.shape[1] and all(g.startswith("x") for g in got):
            got = list(names)
    if arr.shape[0] != n:
        raise DPKInputError(
            f"covariates have {arr.shape[0]} rows but there are {n} times; they must match."
        )
    if names is not None:
        missing = [c for c in names if c not in got]
        if missing:
            raise DPKInputError(f"covariate(s) {missing} missing at predict time; got {got}.")
        arr = arr[:, [got.index(c) for c in names]]
        got = list(names)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DPKInputError(
            f"covariate {got[j]!r} has {int(bad[:, j].sum())} non-finite value(s) (first at row {i}); "
            "fill or drop those rows."
        )
    return arr, got


def drop_missing(y: np.ndarray, *others: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of y with any NaN are dropped with a counted warning; inf raises. Returns (y, keep)."""
    inf = np.isinf(y)
    if inf.any():
        i = int(np.argwhere(inf)[0][0])
        raise DPKInputError(f"y has an infinite value at index {i}; remove or replace it.")
    keep = ~np.isnan(y).any(axis=1)
    if not keep.any():
        raise DPKInputError(
            f"y has no values: all {len(y)} times are NaN; pass a series with data."
        )
    if not keep.all():
        warnings.warn(
            f"dropped {int((~keep).sum())} time(s) with NaN in y (first at index {int(np.argmin(keep))})",
            stacklevel=3,
        )
    return y[keep], keep
