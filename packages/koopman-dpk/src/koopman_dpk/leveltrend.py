"""Damped local linear trend (Holt, additive damped) on block means of a model's residuals.

`level_method="holt"` in `DPK`: the location residuals of the fitted model on its training
data are averaged over consecutive blocks of `level_window` (ending at the last training
time); Holt's damped trend (Gardner & McKenzie) is fitted to those block means by one-step
least squares with Hyndman's bounds (0 < beta <= alpha < 1, 0.8 <= phi <= 0.98), and the
forecast correction at k blocks ahead, l_T + (phi + ... + phi^k) b_T, is added to the
location. This is the DPK analogue of MSTL's ETS trend forecaster: the periodic structure
comes from the network, the recent level and a damped slope from the residuals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize

PHI_BOUNDS = (0.8, 0.98)


@dataclass
class DampedTrend:
    level: list[float]  # per output column, scaled units
    slope: list[float]
    phi: list[float]
    end: float  # tau of the last training point
    block: float  # tau length of one block

    def correction(self, tau: np.ndarray) -> np.ndarray:
        """(len(tau), d) additive correction; k = lead / block (continuous, >= 0)."""
        k = np.maximum((np.asarray(tau, dtype=float) - self.end) / self.block, 0.0)
        phi = np.asarray(self.phi)[None, :]
        damp = phi * (1 - phi ** k[:, None]) / (1 - phi)
        return np.asarray(self.level)[None, :] + damp * np.asarray(self.slope)[None, :]

    def to_json(self) -> dict:
        return asdict(self)


def _holt_sse(params: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    alpha, beta_frac, phi = params
    beta = beta_frac * alpha
    level, slope = x[0], 0.0
    sse = 0.0
    for v in x[1:]:
        pred = level + phi * slope
        err = v - pred
        sse += err * err
        new_level = pred + alpha * err
        slope = phi * slope + beta * err
        level = new_level
    return sse, level, slope


def fit_damped_trend(x: np.ndarray) -> tuple[float, float, float]:
    """(final level, final slope, phi) of Holt's damped trend fitted to the 1-D series x."""
    x = np.asarray(x, dtype=float)
    if len(x) < 4:
        return float(x.mean()), 0.0, PHI_BOUNDS[0]
    res = optimize.minimize(
        lambda p: _holt_sse(p, x)[0],
        x0=np.array([0.3, 0.1, 0.9]),
        bounds=[(1e-3, 0.999), (1e-3, 1.0), PHI_BOUNDS],
        method="L-BFGS-B",
    )
    _, level, slope = _holt_sse(res.x, x)
    return float(level), float(slope), float(res.x[2])


def block_means(tau: np.ndarray, resid: np.ndarray, block: float) -> np.ndarray:
    """Means of resid (T, d) over consecutive tau blocks of length `block` ending at tau[-1]
    (oldest first); empty blocks (gaps) are skipped."""
    idx = np.floor((tau[-1] - tau) / block).astype(int)  # 0 = the most recent block
    n = int(idx.max()) + 1
    sums = np.zeros((n, resid.shape[1]))
    counts = np.zeros(n)
    np.add.at(sums, idx, resid)
    np.add.at(counts, idx, 1.0)
    keep = counts > 0
    return (sums[keep] / counts[keep, None])[::-1]


def fit_block_trend(tau: np.ndarray, resid: np.ndarray, block: float) -> DampedTrend:
    means = block_means(tau, resid, block)
    fits = [fit_damped_trend(means[:, j]) for j in range(means.shape[1])]
    return DampedTrend(
        level=[f[0] for f in fits],
        slope=[f[1] for f in fits],
        phi=[f[2] for f in fits],
        end=float(tau[-1]),
        block=float(block),
    )
