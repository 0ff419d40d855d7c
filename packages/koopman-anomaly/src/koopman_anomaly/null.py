"""Calibrated null distributions for window statistics, fitted on a calibration period C.

Each null is fitted per series (columns of a (time, series) array) and returns p-values for
window statistics: p_low (small statistic is anomalous), p_up, or two-sided.

- `EmpiricalNull`: the calibration windows themselves, finite-sample p=(1+#)/(1+n_C).
- `HACNull`: normal approximation with a HAC (Bartlett-weighted) variance of the window mean.
- `BootstrapNull`: stationary bootstrap of e over C (blocks of max(24, 2 tau_int)).
- `InsampleNull`: training-period windows (reproduction of the anchor only; anticonservative).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from .errors import ConfigError
from .windows import select_stat, window_stats

SIDES = ("lower", "upper", "both")


def _as2d(e: np.ndarray) -> tuple[np.ndarray, bool]:
    a = np.asarray(e, dtype=np.float64)
    if a.ndim == 1:
        return a[:, None], True
    if a.ndim != 2:
        raise ValueError(f"expected a (time,) or (time, series) array, got shape {a.shape}.")
    return a, False


def autocovariance(e: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocovariances gamma_0..gamma_max_lag per column, NaN-aware (pairs of valid points).

    Normalised by the number of valid pairs at each lag; mean removed first. Shape (max_lag+1, n).
    """
    x, _ = _as2d(e)
    xt = np.ascontiguousarray(x.T)  # (series, time): FFTs along the contiguous axis
    valid = np.isfinite(xt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN series give NaN
        m = np.nanmean(xt, axis=1, keepdims=True)
    x0 = np.where(valid, xt - m, 0.0)
    n = xt.shape[1]
    # zero padding to n + max_lag avoids circular wrap for the lags we keep
    nfft = 1 << int(np.ceil(np.log2(n + max_lag + 1)))
    fx = np.fft.rfft(x0, nfft, axis=1)
    num = np.fft.irfft(fx * np.conj(fx), nfft, axis=1)[:, : max_lag + 1]
    if valid.all():
        cnt = np.broadcast_to(n - np.arange(max_lag + 1, dtype=np.float64), num.shape)
    else:
        fv = np.fft.rfft(valid.astype(np.float64), nfft, axis=1)
        cnt = np.fft.irfft(fv * np.conj(fv), nfft, axis=1)[:, : max_lag + 1]
    cnt = np.maximum(np.round(cnt), 1.0)
    return np.ascontiguousarray((num / cnt).T)


def integrated_time(e: np.ndarray, max_lag: int = 2000) -> np.ndarray:
    """Integrated autocorrelation time 1+2*sum rho_h, summed until rho first drops below 0.05."""
    x, _ = _as2d(e)
    max_lag = int(min(max_lag, x.shape[0] // 2))
    g = autocovariance(x, max_lag)
    rho = g / g[:1]
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        r = rho[1:, j]
        stop = np.flatnonzero(r < 0.05)
        r = r[: stop[0]] if stop.size else r
        out[j] = 1.0 + 2.0 * float(np.sum(r))
    return out


def _side_p(p_low: np.ndarray, p_up: np.ndarray, side: str) -> np.ndarray:
    if side == "lower":
        return p_low
    if side == "upper":
        return p_up
    if side == "both":
        return np.minimum(1.0, 2.0 * np.minimum(p_low, p_up))
    raise ConfigError(f"side must be one of {SIDES}, got {side!r}.")


@dataclass
class _NullBase:
    k: int = 168
    stat: str = "mean"
    n_calib: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_eff: np.ndarray = field(default_factory=lambda: np.zeros(0))
    squeeze_: bool = False

    def _calib_windows(self, e: np.ndarray) -> np.ndarray:
        return select_stat(window_stats(e, self.k), self.stat)

    def pvalue(self, s: np.ndarray, side: str = "lower") -> np.ndarray:
        raise NotImplementedError

    def check_alpha(self, alpha: float) -> None:
        """Errors if the null cannot resolve level alpha; warns if it barely can."""
        if not 0 < alpha <= 0.5:
            raise ConfigError(f"alpha must lie in (0, 0.5], got {alpha}.")


class EmpiricalNull(_NullBase):
    """Calibration windows as the null sample; p=(1+#{s_C<=s})/(1+n_C) per series."""

    def fit(self, e_calib: np.ndarray, k: int, stat: str = "mean") -> EmpiricalNull:
        x, self.squeeze_ = _as2d(e_calib)
        self.k, self.stat = k, stat
        if k > x.shape[0]:
            raise ConfigError(
                f"window k={k} is longer than the calibration span ({x.shape[0]} steps); "
                "lengthen the calibration period or shorten the window."
            )
        s = self._calib_windows(x)
        self.sorted_ = [np.sort(col[np.isfinite(col)]) for col in s.T]
        self.n_calib = np.array([len(c) for c in self.sorted_], dtype=float)
        self.n_eff = np.isfinite(x).sum(0) / k
        return self

    def check_alpha(self, alpha: float) -> None:
        super().check_alpha(alpha)
        nmin = float(self.n_calib.min()) if self.n_calib.size else 0.0
        if alpha * nmin < 1:
            raise ConfigError(
                f"alpha*n_C = {alpha}*{nmin:.0f} < 1: the empirical null cannot reach level {alpha}. "
                "Use null='hac' or 'bootstrap', or a longer calibration period."
            )
        neff = float(self.n_eff.min())
        if alpha * neff < 5:
            warnings.warn(
                f"empirical null: alpha*n_eff = {alpha * neff:.2f} < 5 (n_eff = |C|/k = {neff:.1f} "
                "independent windows); the threshold is noisy. Prefer null='hac' or 'bootstrap'.",
                stacklevel=2,
            )

    def pvalue(self, s: np.ndarray, side: str = "lower") -> np.ndarray:
        a, sq = _as2d(s)
        p_low = np.full(a.shape, np.nan)
        p_up = np.full(a.shape, np.nan)
        for j, ref in enumerate(self.sorted_):
            col = a[:, j]
            ok = np.isfinite(col)
            n = len(ref)
            p_low[ok, j] = (1 + np.searchsorted(ref, col[ok], side="right")) / (1 + n)
            p_up[ok, j] = (1 + n - np.searchsorted(ref, col[ok], side="left")) / (1 + n)
        p = _side_p(p_low, p_up, side)
        return p[:, 0] if sq else p


class InsampleNull(EmpiricalNull):
    """The anchor's in-sample null: empirical windows of the *training* residuals.

    Its p-values are anticonservative (in-sample residuals are too narrow); kept only to
    reproduce and measure that. `iqr_threshold` gives the anchor's floored threshold.
    """

    def iqr_threshold(self, alpha: float = 0.001, lam: float = 1.0) -> np.ndarray:
        out = []
        for ref in self.sorted_:
            q_a = np.quantile(ref, alpha)
            q1, q3 = np.quantile(ref, [0.25, 0.75])
            out.append(max(q_a, q1 - lam * (q3 - q1)))
        return np.asarray(out)


class HACNull(_NullBase):
    """Normal null for the window mean with a HAC variance from calibration autocovariances.

    Var(mean of m points) = m^-1 [g0 + 2 sum_{h<m} (1-h/m) g_h]; falls back to a Bartlett
    taper of half that length if the estimate is not positive. The variance is evaluated at the
    window's actual count m (windows with gaps are wider).

    `student_t=True` (opt-in, not the default) takes p from Student-t with n_eff - 1 degrees of
    freedom (n_eff = |C|/k): the variance is estimated from only ~|C|/k effective windows, which
    matters in the far tail used by Holm/Bonferroni/maxT, not at alpha 0.05-0.01.
    """

    finite_calib_correction: bool = True
    student_t: bool = False

    def fit(self, e_calib: np.ndarray, k: int, stat: str = "mean") -> HACNull:
        x, self.squeeze_ = _as2d(e_calib)
        self.k, self.stat = k, stat
        if stat not in ("mean", "msq"):
            raise ConfigError(f"stat must be 'mean' or 'msq', got {stat!r}.")
        if k > x.shape[0]:
            raise ConfigError(
                f"window k={k} is longer than the calibration span ({x.shape[0]} steps); "
                "lengthen the calibration period or shorten the window."
            )
        y = x * x if stat == "msq" else x
        self.center_ = np.nanmean(y, axis=0)
        g = autocovariance(y, k - 1)
        m = np.arange(1, k + 1, dtype=float)  # possible window counts
        var = np.empty((k, x.shape[1]))
        h = np.arange(k, dtype=float)
        for i, mm in enumerate(m):
            w = np.clip(1.0 - h / mm, 0.0, None)
            w[0] = 1.0
            v = (g[0] + 2.0 * (w[1:, None] * g[1:]).sum(0)) / mm
            bad = v <= 0
            if bad.any():
                L = max(1.0, mm / 2)
                wb = np.clip(1.0 - h / L, 0.0, None)
                v_b = (g[0] + 2.0 * (wb[1:, None] * g[1:]).sum(0)) / mm
                v = np.where(bad, v_b, v)
            if self.finite_calib_correction:
                # sample autocovariances are biased low by Var(calibration mean), and the centre
                # m_C is itself estimated: both add ~ mm/n_C of the window variance
                r = min(mm / max(x.shape[0], 1), 0.5)
                v = v * (1 + r) / (1 - r)
            var[i] = np.maximum(v, 1e-12)
        self.sd_by_count_ = np.sqrt(var)  # row m-1 -> sd for m valid points
        self.n_calib = np.isfinite(x).sum(0).astype(float)
        self.n_eff = self.n_calib / k
        return self

    def sd(self, count: np.ndarray | None = None) -> np.ndarray:
        if count is None:
            return self.sd_by_count_[-1]
        idx = np.clip(np.asarray(count, dtype=int), 1, self.k) - 1
        cols = np.arange(self.sd_by_count_.shape[1])
        return self.sd_by_count_[idx, np.broadcast_to(cols, idx.shape)]

    def standardise(self, s: np.ndarray, count: np.ndarray | None = None) -> np.ndarray:
        a, _ = _as2d(s)
        c = None if count is None else _as2d(count)[0]
        return (a - self.center_) / (self.sd(c) if c is not None else self.sd())

    def pvalue(
        self, s: np.ndarray, side: str = "lower", count: np.ndarray | None = None
    ) -> np.ndarray:
        _, sq = _as2d(s)
        z = self.standardise(s, count)
        if self.student_t:
            df = np.maximum(self.n_eff - 1.0, 1.0)
            p_low, p_up = sps.t.cdf(z, df), sps.t.sf(z, df)
        else:
            p_low = sps.norm.cdf(z)
            p_up = sps.norm.sf(z)
        p = _side_p(p_low, p_up, side)
        p = np.where(np.isfinite(z), p, np.nan)
        return p[:, 0] if sq else p


def stationary_bootstrap_index(
    rng: np.random.Generator, n: int, length: int, mean_block: float, n_rep: int
) -> np.ndarray:
    """Indices (n_rep, length) into a series of length n: geometric blocks, circular wrap."""
    p = 1.0 / max(mean_block, 1.0)
    starts = rng.integers(0, n, size=(n_rep, length))
    new_block = rng.random((n_rep, length)) < p
    new_block[:, 0] = True
    # position inside the current block: steps since the last block start
    pos = np.arange(length)[None, :]
    last_start = np.maximum.accumulate(np.where(new_block, pos, 0), axis=1)
    block_start_val = np.take_along_axis(starts, last_start, axis=1)
    return (block_start_val + (pos - last_start)) % n


class BootstrapNull(EmpiricalNull):
    """Stationary bootstrap of e over C; pooled replicate windows give empirical p-values.

    With `variance_match` (default) the pooled window means are rescaled to the HAC variance:
    the bootstrap supplies the shape of the tail, HAC the long-memory variance that short
    blocks cut.
    """

    def __init__(
        self,
        n_rep: int = 2000,
        seed: int = 0,
        min_block: int = 24,
        thin: int | None = None,
        block_vs_k: float = 0.0,
        variance_match: bool = True,
    ):
        super().__init__()
        self.n_rep, self.seed, self.min_block, self.thin = n_rep, seed, min_block, thin
        self.block_vs_k = block_vs_k
        self.variance_match = variance_match

    def fit(self, e_calib: np.ndarray, k: int, stat: str = "mean") -> BootstrapNull:
        x, self.squeeze_ = _as2d(e_calib)
        self.k, self.stat = k, stat
        n = x.shape[0]
        if k > n:
            raise ConfigError(
                f"window k={k} is longer than the calibration span ({n} steps); "
                "lengthen the calibration period or shorten the window."
            )
        rng = np.random.default_rng(self.seed)
        hac = HACNull().fit(x, k, stat) if self.variance_match and stat == "mean" else None
        # integrated time over the lags a window actually sees (Bartlett weights, lags < k):
        # consistent with the window-mean variance and robust to small long-memory remnants
        g = autocovariance(x, k - 1)
        w = 1.0 - np.arange(k) / k
        tau = 1.0 + 2.0 * (w[1:, None] * g[1:] / g[:1]).sum(0)
        self.tau_int_ = np.maximum(tau, 1.0)
        # Mean block max(24, 2 tau_int) (the spec's rule); `block_vs_k` > 0 forces blocks of at
        # least that many windows (closer to resampling whole calibration windows).
        self.block_ = np.maximum.reduce(
            [
                np.full_like(tau, self.min_block),
                2.0 * self.tau_int_,
                np.full_like(tau, self.block_vs_k * k),
            ]
        )
        thin = self.thin or max(1, k // 4)
        length = min(n, max(4 * k, 2048))
        self.sorted_ = []
        for j in range(x.shape[1]):
            pooled = []
            done = 0
            while done < self.n_rep:
                r = min(256, self.n_rep - done)
                idx = stationary_bootstrap_index(rng, n, length, float(self.block_[j]), r)
                rep = x[idx, j].T  # (length, r)
                s = select_stat(window_stats(rep, k), stat)[k - 1 :: thin]
                pooled.append(s[np.isfinite(s)])
                done += r
            pooled_j = np.concatenate(pooled)
            if self.variance_match and stat == "mean":
                # Short blocks recombine the calibration into many new windows (a smooth tail at
                # small alpha) but cut long-memory dependence, so the window variance comes out
                # low; rescale the deviations to the HAC variance (finite-calibration corrected).
                target = hac.sd()[j]
                sd_b = float(np.std(pooled_j))
                if sd_b > 0:
                    mb = float(np.mean(pooled_j))
                    pooled_j = hac.center_[j] + (pooled_j - mb) * (target / sd_b)
            self.sorted_.append(np.sort(pooled_j))
        self.n_calib = np.array([len(c) for c in self.sorted_], dtype=float)
        self.n_eff = np.isfinite(x).sum(0) / k
        return self

    def check_alpha(self, alpha: float) -> None:
        _NullBase.check_alpha(self, alpha)
        if alpha * float(self.n_calib.min()) < 1:
            raise ConfigError(f"too few bootstrap windows for alpha={alpha}; raise n_rep.")


def make_null(name: str, seed: int = 0, n_rep: int = 2000) -> _NullBase:
    if name == "empirical":
        return EmpiricalNull()
    if name == "hac":
        return HACNull()
    if name == "hac_t":  # Student-t with n_eff - 1 df: for FWER control (Holm, Bonferroni, maxT)
        h = HACNull()
        h.student_t = True
        return h
    if name == "bootstrap":
        return BootstrapNull(n_rep=n_rep, seed=seed)
    if name == "insample":
        return InsampleNull()
    raise ConfigError(
        f"null must be one of empirical, hac, hac_t, bootstrap, insample; got {name!r}."
    )
