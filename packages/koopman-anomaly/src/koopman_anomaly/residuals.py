"""Standardised residuals z = Phi^-1(PIT) and reference ("model twin") differencing."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

PIT_CLIP = 1e-12


def standardised_residuals(y: np.ndarray, predictive: object) -> np.ndarray:
    """z_t = Phi^-1(clip(F_t(y_t))) when the predictive has `cdf`, else (y-mean)/std.

    For a Normal predictive both are the same; the PIT route is exact for any distribution.
    NaN observations stay NaN.
    """
    y = np.asarray(y, dtype=float)
    cdf = getattr(predictive, "cdf", None)
    if callable(cdf):
        u = np.asarray(cdf(np.nan_to_num(y)), dtype=float)
        z = sps.norm.ppf(np.clip(u, PIT_CLIP, 1 - PIT_CLIP))
    else:
        mu = np.asarray(predictive.mean(), dtype=float)  # type: ignore[attr-defined]
        sd = np.asarray(predictive.std(), dtype=float)  # type: ignore[attr-defined]
        z = (y - mu) / sd
    return np.where(np.isfinite(y), z, np.nan)


@dataclass
class TwinDifference:
    """zeta = (z - beta z_ref - m) / s, with beta = 1 or OLS, m and s from calibration."""

    beta: float
    rho: float
    mean: float
    sd: float

    def apply(self, z: np.ndarray, z_ref: np.ndarray) -> np.ndarray:
        return (np.asarray(z) - self.beta * np.asarray(z_ref) - self.mean) / self.sd


def fit_twin(
    z_cal: np.ndarray, zref_cal: np.ndarray, beta: str | float = "ols", warn_rho: float = 0.2
) -> TwinDifference:
    """Fit the twin differencing on calibration residuals of one series."""
    ok = np.isfinite(z_cal) & np.isfinite(zref_cal)
    if ok.sum() < 10:
        raise ValueError(f"only {int(ok.sum())} calibration points with both obs and reference.")
    a, b = np.asarray(z_cal)[ok], np.asarray(zref_cal)[ok]
    rho = float(np.corrcoef(a, b)[0, 1])
    if beta == "ols":
        bh = float(np.cov(a, b)[0, 1] / np.var(b, ddof=1))
    else:
        bh = float(beta)
    d = a - bh * b
    if rho < warn_rho:
        warnings.warn(
            f"reference correlation rho={rho:.2f} < {warn_rho}: the reference removes little shared "
            "variance; differencing may not help.",
            stacklevel=2,
        )
    return TwinDifference(beta=bh, rho=rho, mean=float(d.mean()), sd=float(d.std(ddof=1)))
