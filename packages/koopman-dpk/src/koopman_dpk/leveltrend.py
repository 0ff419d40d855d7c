"""Local level / local trend models (exponential smoothing) on block means of a model's residuals.

`level_method="holt"` or `"ets"` in `DPK`: the location residuals of the fitted model on its
training data are averaged over consecutive blocks of `level_window` (ending at the last training
time) and an additive exponential-smoothing model is fitted to those block means by one-step
least squares, with Hyndman's bounds (0 < beta <= alpha < 1, 0.8 <= phi <= 0.98):

* ``"ANN"`` simple exponential smoothing (a local level),
* ``"AAN"`` Holt's linear trend,
* ``"AAdN"`` Holt's damped trend (Gardner & McKenzie).

`"holt"` fits AAdN; `"ets"` picks one of the three per output by AICc, as `ets()` does for
the non-seasonal part of a series (the periodic structure is the network's). The forecast
correction at k blocks ahead is l_T + phi_k b_T (phi_k = phi + ... + phi^k; k for AAN, 0 for
ANN), and the variance the level forecast adds at lead h = ceil(k) blocks is
sigma^2 * sum_{j=1}^{h-1} c_j^2 with c_j = alpha + beta phi_j (Hyndman et al. 2008, class 1),
sigma^2 the one-step variance of the block means. This is the DPK analogue of MSTL's ETS trend
forecaster: the periodic structure comes from the network, the level and its uncertainty from
the residuals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import optimize

PHI_BOUNDS = (0.8, 0.98)
KINDS = ("ANN", "AAN", "AAdN")


@dataclass
class DampedTrend:
    level: list[float]  # per output column, scaled units
    slope: list[float]
    phi: list[float]
    end: float  # tau of the last training point
    block: float  # tau length of one block
    kind: list[str] = field(default_factory=list)  # per column; empty (old files) = AAdN
    alpha: list[float] = field(default_factory=list)
    beta: list[float] = field(default_factory=list)
    sigma2: list[float] = field(default_factory=list)  # one-step variance of the block means
    replaces_trend: bool = False  # level_target="deseasonalized": replaces the trend ahead

    def _leads(self, tau: np.ndarray) -> np.ndarray:
        return np.maximum((np.asarray(tau, dtype=float) - self.end) / self.block, 0.0)

    def _phi_sum(self, k: np.ndarray) -> np.ndarray:
        """(len(k), d): phi + ... + phi^k per column (k for AAN, 0 for ANN; k continuous)."""
        kinds = self.kind or ["AAdN"] * len(self.level)
        out = np.empty((len(k), len(kinds)))
        for j, (kind, phi) in enumerate(zip(kinds, self.phi, strict=True)):
            if kind == "ANN":
                out[:, j] = 0.0
            elif kind == "AAN":
                out[:, j] = k
            else:
                out[:, j] = phi * (1 - phi**k) / (1 - phi)
        return out

    def correction(self, tau: np.ndarray) -> np.ndarray:
        """(len(tau), d) additive correction; k = lead / block (continuous, >= 0)."""
        k = self._leads(tau)
        return np.asarray(self.level)[None, :] + self._phi_sum(k) * np.asarray(self.slope)[None, :]

    def variance(self, tau: np.ndarray) -> np.ndarray:
        """(len(tau), d) variance of the level forecast at each time (0 for the first block)."""
        d = len(self.level)
        if not self.sigma2:
            return np.zeros((len(np.atleast_1d(tau)), d))
        h = np.ceil(self._leads(tau) - 1e-9).astype(int)
        hmax = int(h.max(initial=0))
        out = np.zeros((len(h), d))
        if hmax <= 1:
            return out
        j = np.arange(1, hmax, dtype=float)  # j = 1 .. hmax - 1
        phi_j = self._phi_sum(j)
        for col in range(d):
            c = self.alpha[col] + self.beta[col] * phi_j[:, col]
            cum = np.concatenate([[0.0, 0.0], np.cumsum(c**2)])  # cum[h] = sum_{j<h} c_j^2
            out[:, col] = self.sigma2[col] * cum[np.clip(h, 0, hmax)]
        return out

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SmoothingFit:
    kind: str
    level: float
    slope: float
    phi: float
    alpha: float
    beta: float
    sse: float
    n: int

    @property
    def aicc(self) -> float:
        k = {"ANN": 1, "AAN": 2, "AAdN": 3}[self.kind] + 1  # smoothing parameters + sigma^2
        n = self.n
        if n - k - 1 <= 0:
            return math.inf
        return n * math.log(max(self.sse, 1e-300) / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _initial_state(x: np.ndarray, with_slope: bool) -> tuple[float, float]:
    """(l0, b0): OLS line through the first min(10, n/2) points, evaluated one step before x[0]."""
    m = max(2, min(10, len(x) // 2))
    if not with_slope:
        return float(x[:m].mean()), 0.0
    t = np.arange(m, dtype=float)
    b, a = np.polyfit(t, x[:m], 1)
    return float(a - b), float(b)


def _smooth(
    x: np.ndarray, alpha: float, beta: float, phi: float, l0: float, b0: float
) -> tuple[float, float, float]:
    """One-step-ahead errors of the additive (damped) trend recursions: (sse, l_T, b_T)."""
    level, slope = l0, b0
    sse = 0.0
    for v in x:
        pred = level + phi * slope
        err = v - pred
        sse += err * err
        level = pred + alpha * err
        slope = phi * slope + beta * err
    return sse, level, slope


def fit_smoothing(x: np.ndarray, kind: str = "AAdN") -> SmoothingFit:
    """Fit one additive exponential-smoothing model (ANN, AAN or AAdN) to the 1-D series x."""
    x = np.asarray(x, dtype=float)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if len(x) < 4:
        return SmoothingFit("ANN", float(x.mean()), 0.0, 1.0, 0.0, 0.0, 0.0, len(x))
    l0, b0 = _initial_state(x, kind != "ANN")
    if kind == "ANN":

        def unpack(p):
            return p[0], 0.0, 1.0

        x0, bounds = [0.3], [(1e-3, 0.999)]
    elif kind == "AAN":

        def unpack(p):
            return p[0], p[1] * p[0], 1.0

        x0, bounds = [0.3, 0.1], [(1e-3, 0.999), (1e-3, 1.0)]
    else:

        def unpack(p):
            return p[0], p[1] * p[0], p[2]

        x0, bounds = [0.3, 0.1, 0.9], [(1e-3, 0.999), (1e-3, 1.0), PHI_BOUNDS]
    res = optimize.minimize(
        lambda p: _smooth(x, *unpack(p), l0, b0)[0],
        x0=np.array(x0),
        bounds=bounds,
        method="L-BFGS-B",
    )
    alpha, beta, phi = unpack(res.x)
    sse, level, slope = _smooth(x, alpha, beta, phi, l0, b0)
    if kind == "ANN":
        slope = 0.0
    return SmoothingFit(kind, float(level), float(slope), float(phi), alpha, beta, sse, len(x))


def fit_damped_trend(x: np.ndarray) -> tuple[float, float, float]:
    """(final level, final slope, phi) of Holt's damped trend fitted to the 1-D series x."""
    f = fit_smoothing(x, "AAdN")
    return f.level, f.slope, f.phi if f.kind == "AAdN" else PHI_BOUNDS[0]


def select_smoothing(x: np.ndarray) -> SmoothingFit:
    """The AICc-best of ANN, AAN and AAdN on x."""
    return min((fit_smoothing(x, k) for k in KINDS), key=lambda f: f.aicc)


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


def fit_block_trend(
    tau: np.ndarray, resid: np.ndarray, block: float, method: str = "holt"
) -> DampedTrend:
    """`method="holt"`: AAdN per column; `"ets"`: the AICc-best of ANN/AAN/AAdN per column."""
    means = block_means(tau, resid, block)
    cols = [means[:, j] for j in range(means.shape[1])]
    fits = [select_smoothing(c) if method == "ets" else fit_smoothing(c, "AAdN") for c in cols]
    return DampedTrend(
        level=[f.level for f in fits],
        slope=[f.slope for f in fits],
        phi=[f.phi for f in fits],
        end=float(tau[-1]),
        block=float(block),
        kind=[f.kind for f in fits],
        alpha=[float(f.alpha) for f in fits],
        beta=[float(f.beta) for f in fits],
        sigma2=[f.sse / max(f.n, 1) for f in fits],
    )
