"""Forecast metrics: pinball, CRPS (closed forms, quantile rule, discrete sums, samples), QCRPS,
interval coverage and score, PIT and its histogram, NLL, NMB, NRMSE and Pearson r.

Array functions take observations y and predictions of matching leading shape; the `*_forecast`
helpers accept a `Forecast`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special, stats

from .errors import DPKInputError
from .forecast import DEFAULT_QUANTILES, Forecast, check_levels

QCRPS_LEVELS = np.arange(1, 100) / 100.0
CRPS_MIDPOINTS = (np.arange(199) + 0.5) / 199.0


def _arr(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float)


def pinball_loss(y: Any, quantiles: Any, levels: Sequence[float] = DEFAULT_QUANTILES) -> np.ndarray:
    """rho_q(y - yhat_q) = max(q (y - yhat), (q - 1)(y - yhat)); shape of `quantiles` (..., Q)."""
    q = check_levels(levels)
    y = _arr(y)[..., None]
    diff = y - _arr(quantiles)
    return np.maximum(q * diff, (q - 1.0) * diff)


def pinball(y: Any, quantiles: Any, levels: Sequence[float] = DEFAULT_QUANTILES) -> float:
    """Mean pinball loss over points and levels (default q = 0.1..0.9)."""
    return float(np.mean(pinball_loss(y, quantiles, levels)))


def qcrps(y: Any, quantiles_99: Any) -> float:
    """Quantile CRPS: 2 x mean pinball over the 99 levels 0.01..0.99 (applied to every model)."""
    return 2.0 * pinball(y, quantiles_99, QCRPS_LEVELS)


def crps_normal(y: Any, mu: Any, sigma: Any) -> np.ndarray:
    """sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)]."""
    z = (_arr(y) - mu) / sigma
    return sigma * (z * (2 * special.ndtr(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))


def crps_student_t(y: Any, mu: Any, s: Any, nu: Any) -> np.ndarray:
    """Closed form for the location-scale Student-t with nu > 1."""
    nu = _arr(nu)
    if np.any(nu <= 1):
        raise DPKInputError("the Student-t CRPS is finite only for nu > 1")
    z = (_arr(y) - mu) / s
    F = stats.t.cdf(z, nu)
    f = stats.t.pdf(z, nu)
    beta = special.beta(0.5, nu - 0.5) / special.beta(0.5, nu / 2.0) ** 2
    return s * (
        z * (2 * F - 1) + 2 * f * (nu + z * z) / (nu - 1) - 2 * np.sqrt(nu) * beta / (nu - 1)
    )


def crps_quantile_rule(y: Any, quantile_fn) -> np.ndarray:
    """2 * integral_0^1 rho_q dq over 199 midpoints; quantile_fn(levels) -> (..., 199)."""
    return 2.0 * np.mean(pinball_loss(y, quantile_fn(CRPS_MIDPOINTS), CRPS_MIDPOINTS), axis=-1)


def crps_samples(y: Any, samples: Any) -> np.ndarray:
    """n^-1 sum |x_i - y| - sum_{i != j} |x_i - x_j| / (2 n (n - 1)); samples (n, ...)."""
    x = np.sort(_arr(samples), axis=0)
    n = x.shape[0]
    term1 = np.mean(np.abs(x - _arr(y)[None]), axis=0)
    # sum_{i<j} (x_j - x_i) for sorted x = sum_i x_i (2i - n + 1)
    w = (2 * np.arange(n) - n + 1).reshape((n,) + (1,) * (x.ndim - 1))
    pair_sum = 2.0 * np.sum(w * x, axis=0)  # sum over ordered pairs i != j
    return term1 - pair_sum / (2.0 * n * (n - 1))


def crps_discrete(y: Any, cdf_fn, upper: int) -> np.ndarray:
    """sum_{k=0}^{upper} (F(k) - 1{y <= k})^2 for count distributions."""
    y = _arr(y)
    total = np.zeros_like(y)
    for k in range(int(upper) + 1):
        total += (cdf_fn(float(k)) - (y <= k)) ** 2
    return total


def crps(forecast: Forecast, y: Any) -> np.ndarray:
    """Pointwise CRPS (H, d) of a Forecast, closed form where one exists."""
    yy = forecast._as_y(y)
    dist = forecast.distribution
    plain = (
        forecast.n_scenarios == 1
        and not forecast._transformed
        and forecast.residual_calibration is None
    )
    p = {k: v[0] for k, v in forecast._p.items()}
    if plain and dist.name == "normal":
        return crps_normal(yy, p["mu"], p["sigma"])
    if plain and dist.name == "studentt" and np.all(p["nu"] > 1):
        return crps_student_t(yy, p["mu"], p["s"], p["nu"])
    if plain and dist.discrete:
        hi = int(max(np.nanmax(yy), np.nanmax(forecast._base_ppf(np.full(yy.shape, 1 - 1e-6))))) + 1
        return crps_discrete(yy, lambda k: forecast._base_cdf(np.full(yy.shape, k)), hi)
    return crps_quantile_rule(yy, forecast._quantile_array)


def coverage(y: Any, lower: Any, upper: Any) -> float:
    """Share of observations inside [lower, upper]."""
    y = _arr(y)
    return float(np.mean((y >= _arr(lower)) & (y <= _arr(upper))))


def interval_score(y: Any, lower: Any, upper: Any, alpha: float) -> float:
    """Mean (u - l) + (2/a)(l - y)_+ + (2/a)(y - u)_+ for the central (1 - a) interval."""
    y, lo, up = _arr(y), _arr(lower), _arr(upper)
    s = (up - lo) + (2 / alpha) * np.maximum(lo - y, 0) + (2 / alpha) * np.maximum(y - up, 0)
    return float(np.mean(s))


def pit(forecast: Forecast, y: Any, seed: int | None = None) -> np.ndarray:
    return np.asarray(forecast.pit(y, seed=seed), dtype=float)


def pit_histogram(u: Any, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(density per bin, edges): a calibrated forecast has density ~ 1 in every bin."""
    u = _arr(u).ravel()
    u = u[np.isfinite(u)]
    counts, edges = np.histogram(u, bins=bins, range=(0.0, 1.0))
    return counts / max(len(u), 1) * bins, edges


def nll(forecast: Forecast, y: Any) -> float:
    return float(np.mean(np.asarray(forecast.nll(y), dtype=float)))


def nmb(y: Any, yhat: Any) -> float:
    """Normalised mean bias mean(yhat - y) / mean(y)."""
    y = _arr(y)
    return float(np.mean(_arr(yhat) - y) / np.mean(y))


def nrmse(y: Any, yhat: Any) -> float:
    """RMSE / (q95 - q05) of the observations."""
    y = _arr(y)
    q05, q95 = np.percentile(y, [5, 95])
    return float(np.sqrt(np.mean((_arr(yhat) - y) ** 2)) / (q95 - q05))


def pearson_r(y: Any, yhat: Any) -> float:
    return float(np.corrcoef(_arr(y).ravel(), _arr(yhat).ravel())[0, 1])


def score_forecast(
    forecast: Forecast,
    y: Any,
    metrics: Sequence[str] = ("pinball", "crps", "coverage80", "nll"),
) -> dict[str, float]:
    """Named mean scores. Known names: pinball, crps, qcrps, coverageXX, interval_scoreXX, nll,
    nmb, nrmse, r, mae, rmse."""
    yy = forecast._as_y(y)
    out: dict[str, float] = {}
    for name in metrics:
        if name == "pinball":
            out[name] = pinball(yy, forecast._quantile_array(np.asarray(DEFAULT_QUANTILES)))
        elif name == "crps":
            out[name] = float(np.mean(crps(forecast, yy)))
        elif name == "qcrps":
            out[name] = qcrps(yy, forecast._quantile_array(QCRPS_LEVELS))
        elif name.startswith("coverage"):
            level = int(name[len("coverage") :]) / 100
            a = (1 - level) / 2
            qs = forecast._quantile_array(np.array([a, 1 - a]))
            out[name] = coverage(yy, qs[..., 0], qs[..., 1])
        elif name.startswith("interval_score"):
            level = int(name[len("interval_score") :]) / 100
            a = (1 - level) / 2
            qs = forecast._quantile_array(np.array([a, 1 - a]))
            out[name] = interval_score(yy, qs[..., 0], qs[..., 1], 1 - level)
        elif name == "nll":
            out[name] = nll(forecast, yy)
        elif name in ("nmb", "nrmse", "r", "mae", "rmse"):
            mean = np.asarray(forecast.mean(), dtype=float).reshape(yy.shape)
            if name == "nmb":
                out[name] = nmb(yy, mean)
            elif name == "nrmse":
                out[name] = nrmse(yy, mean)
            elif name == "r":
                out[name] = pearson_r(yy, mean)
            elif name == "mae":
                out[name] = float(np.mean(np.abs(yy - mean)))
            else:
                out[name] = float(np.sqrt(np.mean((yy - mean) ** 2)))
        else:
            raise DPKInputError(f"unknown metric {name!r}")
    return out
