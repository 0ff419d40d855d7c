"""Local level / local trend models (exponential smoothing) on block means of a model's residuals.

`level_method="holt"` or `"ets"` in `DPK`: the location residuals of the fitted model on its
training data are averaged over consecutive blocks of `level_window` (ending at the last training
time) and an additive exponential-smoothing model is fitted to those block means by one-step
least squares, with Hyndman's bounds (0 < beta <= alpha < 1, 0.8 <= phi <= 0.98). As in
Hyndman et al. (2008) and R's `ets`, the initial level and slope are estimated with the
smoothing parameters: the one-step predictions are linear in (l_0, b_0), so for each
(alpha, beta, phi) they are solved by least squares (the SSE is concentrated), and the
predictions come from one IIR filter pass (`scipy.signal.lfilter`):

* ``"ANN"`` simple exponential smoothing (a local level),
* ``"AAN"`` Holt's linear trend,
* ``"AAdN"`` Holt's damped trend (Gardner & McKenzie).

`"holt"` fits AAdN; `"ets"` picks one of the three per output by AICc, as `ets()` does for
the non-seasonal part of a series (the periodic structure is the network's); `"comb"` averages
the three forecasts (Comb S-H-D, `CombinedTrend`); `"ANN"`, `"AAN"` or `"AAdN"` fits that one
form (`ets(model=...)` with the form fixed). The forecast
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
from scipy import optimize, signal

PHI_BOUNDS = (0.8, 0.98)
KINDS = ("ANN", "AAN", "AAdN")
# DPK's level_method values served by `fit_block_trend` (besides "mean" and "auto")
SMOOTHING_METHODS = ("holt", "ets", "comb", *KINDS)
# smoothing parameters + initial states + sigma^2, counted as R's ets does
N_PARAMS = {"ANN": 3, "AAN": 5, "AAdN": 6}


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
        k = N_PARAMS[self.kind]
        n = self.n
        if n - k - 1 <= 0:
            return math.inf
        return n * math.log(max(self.sse, 1e-300) / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


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


def _one_step_parts(
    x: np.ndarray, alpha: float, beta: float, phi: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one-step predictions split as p + l_0 u + b_0 v. With q_t = (l_{t-1}, b_{t-1}):
    q_{t+1} = D q_t + g x_t and x_hat_t = w'q_t, where w = (1, phi), g = (alpha, beta) and
    D = F - g w' (F the trend transition), so x_hat is x filtered by w'(zI - D)^{-1} g, and the
    initial state enters as w'D^t q_0 (the homogeneous recursion of the same denominator)."""
    d11, d12 = 1.0 - alpha, phi * (1.0 - alpha)
    d21, d22 = -beta, phi * (1.0 - beta)
    w1, w2, g1, g2 = 1.0, phi, alpha, beta
    den = np.array([1.0, -(d11 + d22), d11 * d22 - d12 * d21])
    num = np.array(
        [0.0, w1 * g1 + w2 * g2, w1 * (-d22 * g1 + d12 * g2) + w2 * (d21 * g1 - d11 * g2)]
    )
    p = signal.lfilter(num, den, x)
    impulse = np.zeros(len(x))
    impulse[0] = 1.0
    u0, u1 = w1, w1 * d11 + w2 * d21  # w'e_1, w'D e_1
    v0, v1 = w2, w1 * d12 + w2 * d22  # w'e_2, w'D e_2
    u = signal.lfilter([u0, u1 + den[1] * u0], den, impulse)
    v = signal.lfilter([v0, v1 + den[1] * v0], den, impulse)
    return p, u, v


def _concentrated(
    x: np.ndarray, alpha: float, beta: float, phi: float, with_slope: bool
) -> tuple[float, float, float]:
    """(SSE, l_0, b_0) with the initial states solved by least squares for these parameters."""
    p, u, v = _one_step_parts(x, alpha, beta, phi)
    A = np.stack([u, v], 1) if with_slope else u[:, None]
    r = x - p
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(r))):
        return math.inf, 0.0, 0.0
    theta, *_ = np.linalg.lstsq(A, r, rcond=None)
    sse = float(np.sum((r - A @ theta) ** 2))
    return sse, float(theta[0]), float(theta[1]) if with_slope else 0.0


def fit_smoothing(x: np.ndarray, kind: str = "AAdN") -> SmoothingFit:
    """Fit one additive exponential-smoothing model (ANN, AAN or AAdN) to the 1-D series x:
    smoothing parameters by bounded least squares (two starts), initial states concentrated."""
    x = np.asarray(x, dtype=float)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if len(x) < N_PARAMS[kind] + 2:
        return SmoothingFit("ANN", float(x.mean()), 0.0, 1.0, 0.0, 0.0, 0.0, len(x))
    with_slope = kind != "ANN"
    if kind == "ANN":

        def unpack(p):
            return p[0], 0.0, 1.0

        starts, bounds = [[0.3], [0.05]], [(1e-3, 0.999)]
    elif kind == "AAN":

        def unpack(p):
            return p[0], p[1] * p[0], 1.0

        starts = [[0.3, 0.1], [0.3, 1e-3]]
        bounds = [(1e-3, 0.999), (1e-4, 1.0)]
    else:

        def unpack(p):
            return p[0], p[1] * p[0], p[2]

        starts = [[0.3, 0.1, 0.9], [0.3, 1e-3, 0.98]]
        bounds = [(1e-3, 0.999), (1e-4, 1.0), PHI_BOUNDS]
    best = None
    for x0 in starts:
        res = optimize.minimize(
            lambda p: _concentrated(x, *unpack(p), with_slope)[0],
            x0=np.array(x0),
            bounds=bounds,
            method="L-BFGS-B",
        )
        if best is None or res.fun < best.fun:
            best = res
    alpha, beta, phi = unpack(best.x)
    _, l0, b0 = _concentrated(x, alpha, beta, phi, with_slope)
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
) -> DampedTrend | CombinedTrend:
    """`method="holt"`: AAdN per column; `"ets"`: the AICc-best of ANN/AAN/AAdN per column;
    `"comb"`: the equal-weight combination of all three (`CombinedTrend`); one of `KINDS`:
    that form per column."""
    means = block_means(tau, resid, block)
    cols = [means[:, j] for j in range(means.shape[1])]
    if method == "comb":
        return CombinedTrend(
            [_block_trend(tau, block, [fit_smoothing(c, k) for c in cols]) for k in KINDS]
        )
    if method == "ets":
        fits = [select_smoothing(c) for c in cols]
    else:
        kind = "AAdN" if method == "holt" else method
        if kind not in KINDS:
            raise ValueError(
                f"method must be 'holt', 'ets', 'comb' or one of {KINDS}, got {method!r}"
            )
        fits = [fit_smoothing(c, kind) for c in cols]
    return _block_trend(tau, block, fits)


@dataclass
class CombinedTrend:
    """The equal-weight average of several level models' forecasts: with the three members
    ANN, AAN and AAdN this is the "Comb S-H-D" forecast of the M3 competition (Makridakis &
    Hibon 2000), which beat every selection of one of them there and is an M4 benchmark. Model
    selection by AICc reads in-sample one-step errors; on smooth residuals it picks a trend
    with beta near alpha, whose extrapolation runs away at long leads, and the average caps
    that at a third. The added variance is (mean of the members' standard deviations)^2, the
    variance of the averaged forecast when the members' errors are fully correlated (its upper
    bound; they are fitted to the same block means, so nearly so)."""

    members: list[DampedTrend]
    replaces_trend: bool = False

    def __post_init__(self) -> None:
        self.members = [m if isinstance(m, DampedTrend) else DampedTrend(**m) for m in self.members]
        if not self.members:
            raise ValueError("CombinedTrend needs at least one member.")

    @property
    def end(self) -> float:
        return self.members[0].end

    def correction(self, tau: np.ndarray) -> np.ndarray:
        return np.mean([m.correction(tau) for m in self.members], axis=0)

    def variance(self, tau: np.ndarray) -> np.ndarray:
        return np.mean([np.sqrt(m.variance(tau)) for m in self.members], axis=0) ** 2

    def to_json(self) -> dict:
        return {
            "members": [m.to_json() for m in self.members],
            "replaces_trend": self.replaces_trend,
        }


def level_trend_from_json(cfg: dict) -> DampedTrend | CombinedTrend:
    """The level model saved by `to_json` (a combination has a "members" list)."""
    return CombinedTrend(**cfg) if "members" in cfg else DampedTrend(**cfg)


def _block_trend(tau: np.ndarray, block: float, fits: list[SmoothingFit]) -> DampedTrend:
    return DampedTrend(
        level=[f.level for f in fits],
        slope=[f.slope for f in fits],
        phi=[f.phi for f in fits],
        end=float(tau[-1]),
        block=float(block),
        kind=[f.kind for f in fits],
        alpha=[float(f.alpha) for f in fits],
        beta=[float(f.beta) for f in fits],
        sigma2=[f.sse / max(f.n - N_PARAMS[f.kind], 1) for f in fits],  # as R's ets
    )
