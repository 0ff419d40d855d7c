"""Sequential detectors on prewhitened residuals: CUSUM and GLR with bootstrap-calibrated
thresholds (P(alarm within `horizon` steps | null) = alpha)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .null import stationary_bootstrap_index


def ar1_coef(e: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation per column (NaN-aware pairs), clipped to (-0.99, 0.99)."""
    x = np.asarray(e, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    m = np.nanmean(x, axis=0)
    a, b = x[1:] - m, x[:-1] - m
    ok = np.isfinite(a) & np.isfinite(b)
    num = np.where(ok, a * b, 0).sum(0)
    den = np.sqrt(np.where(ok, a * a, 0).sum(0) * np.where(ok, b * b, 0).sum(0))
    return np.clip(num / np.maximum(den, 1e-300), -0.99, 0.99)


def prewhiten(e: np.ndarray, phi: np.ndarray | float) -> np.ndarray:
    """u_t = (e_t - phi e_{t-1}) / sqrt(1 - phi^2); u_0 = e_0. NaN where either point is missing."""
    x = np.asarray(e, dtype=float)
    u = np.empty_like(x)
    u[0] = x[0]
    u[1:] = (x[1:] - phi * x[:-1]) / np.sqrt(1 - np.asarray(phi) ** 2)
    return u


def cusum(
    u: np.ndarray,
    kappa: float | np.ndarray,
    side: str = "lower",
    threshold: float | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided CUSUM. lower: S_t = max(0, S_{t-1} - u_t - kappa); upper mirrors it.

    Missing u leave S unchanged. With a threshold the statistic resets to 0 after each alarm.
    Returns (S, alarm) of u's shape.
    """
    x = np.asarray(u, dtype=float)
    one = x.ndim == 1
    if one:
        x = x[:, None]
    sgn = -1.0 if side == "lower" else 1.0
    kap = np.broadcast_to(np.asarray(kappa, dtype=float), (x.shape[1],))
    h = (
        None
        if threshold is None
        else np.broadcast_to(np.asarray(threshold, dtype=float), (x.shape[1],))
    )
    S = np.zeros_like(x)
    alarm = np.zeros(x.shape, dtype=bool)
    s = np.zeros(x.shape[1])
    incr = sgn * x - kap
    for t in range(x.shape[0]):
        inc = incr[t]
        s = np.where(np.isfinite(inc), np.maximum(0.0, s + inc), s)
        if h is not None:
            a = s > h
            alarm[t] = a
            S[t] = s
            s = np.where(a, 0.0, s)
        else:
            S[t] = s
    if one:
        return S[:, 0], alarm[:, 0]
    return S, alarm


def glr(u: np.ndarray, window: int, side: str = "lower") -> np.ndarray:
    """G_t = max_{t-W < tau <= t} (sum_tau^t u)^2 / (2 (t-tau+1)), signed for one-sided tests
    (only sums in the tested direction count). Missing u count as 0."""
    x = np.nan_to_num(np.asarray(u, dtype=float))
    c = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    G = np.zeros_like(x)
    T = x.shape[0]
    for L in range(1, window + 1):
        if L > T:
            break
        s = c[L:] - c[:-L]  # sum over (t-L, t] for t = L-1..T-1
        if side == "lower":
            s = np.minimum(s, 0.0)
        elif side == "upper":
            s = np.maximum(s, 0.0)
        val = s * s / (2.0 * L)
        G[L - 1 :] = np.maximum(G[L - 1 :], val)
    return G


@dataclass
class SequentialDetector:
    """CUSUM or GLR on AR(1)-prewhitened e, threshold calibrated by bootstrap over C."""

    method: str = "cusum"
    side: str = "lower"
    alpha: float = 0.01
    delta: float = 0.5
    window: int = 336
    horizon: int = 720
    n_rep: int = 300
    seed: int = 0

    def fit(self, e_calib: np.ndarray) -> SequentialDetector:
        x = np.asarray(e_calib, dtype=float)
        self.squeeze_ = x.ndim == 1
        if self.squeeze_:
            x = x[:, None]
        self.phi_ = ar1_coef(x)
        u = prewhiten(x, self.phi_)
        self.kappa_ = 0.5 * self.delta * (1 - self.phi_) / np.sqrt(1 - self.phi_**2)
        rng = np.random.default_rng(self.seed)
        th = np.empty(x.shape[1])
        for j in range(x.shape[1]):
            col = u[:, j]
            col = col[np.isfinite(col)]
            idx = stationary_bootstrap_index(rng, col.size, self.horizon, 24.0, self.n_rep)
            reps = col[idx].T  # (horizon, n_rep)
            stat = self._path(reps, np.full(self.n_rep, self.kappa_[j]))
            th[j] = np.quantile(stat.max(axis=0), 1 - self.alpha)
        self.threshold_ = th
        return self

    def _path(self, u: np.ndarray, kappa: np.ndarray) -> np.ndarray:
        if self.method == "cusum":
            return cusum(u, kappa, self.side)[0]
        if self.method == "glr":
            return glr(u, self.window, self.side)
        raise ValueError(f"method must be 'cusum' or 'glr', got {self.method!r}.")

    def run(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Statistic path and alarms (CUSUM resets after each alarm)."""
        x = np.asarray(e, dtype=float)
        one = x.ndim == 1
        if one:
            x = x[:, None]
        u = prewhiten(x, self.phi_)
        if self.method == "cusum":
            S, alarm = cusum(u, self.kappa_, self.side, self.threshold_)
        else:
            S = glr(u, self.window, self.side)
            alarm = self.threshold_ < S
        if one:
            return S[:, 0], alarm[:, 0]
        return S, alarm
