"""`Forecast`: the predictive distribution returned by `DPK.predict`.

Parameters are held internally as arrays of shape (R, H, d): R covariate scenarios (a uniform
mixture; R = 1 without scenarios), H forecast times, d output series.  Two optional monotone
PIT transforms refine the base distribution F:

* conformal recalibration  u -> C(u), the empirical CDF of validation PITs (for `mse`: the
  empirical distribution of validation residuals replaces F altogether);
* the residual AR correction  u -> Phi((Phi^-1(u) - m_h) / sqrt(v_h)) at lead h.

Outputs follow the input type: numpy arrays, pandas Series/DataFrames, or xarray DataArrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from .distributions.base import Distribution
from .errors import DPKInputError

QUANTILE_GRID = (np.arange(199) + 0.5) / 199.0
DEFAULT_QUANTILES = tuple(np.round(np.arange(1, 10) / 10.0, 2))


@dataclass
class OutputSpec:
    """How to wrap arrays for the caller: kind is 'numpy', 'pandas' or 'xarray'."""

    kind: str = "numpy"
    index: Any = None
    columns: list[str] | None = None
    series_dim: str | None = None
    name: str | None = None

    @property
    def univariate(self) -> bool:
        return self.columns is None or len(self.columns) == 1


def check_levels(q: Any) -> np.ndarray:
    q = np.atleast_1d(np.asarray(q, dtype=float))
    if np.any(~((q > 0) & (q < 1))):
        raise DPKInputError(f"quantile levels must lie strictly in (0, 1); got {q.tolist()}")
    return q


class Forecast:
    """A predictive distribution over H times (and d series)."""

    def __init__(
        self,
        distribution: Distribution,
        params: dict[str, np.ndarray],
        output: OutputSpec | None = None,
        pit_calibration: np.ndarray | None = None,
        residual_calibration: np.ndarray | None = None,
        ar_shift: np.ndarray | None = None,
        ar_var: np.ndarray | None = None,
        seed: int = 0,
    ):
        self.distribution = distribution
        p0 = np.asarray(next(iter(params.values())), dtype=float)
        if p0.ndim == 1:
            params = {k: np.asarray(v, float)[None, :, None] for k, v in params.items()}
        elif p0.ndim == 2:
            params = {k: np.asarray(v, float)[None] for k, v in params.items()}
        self._p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
        self.n_scenarios, self.horizon, self.dim = next(iter(self._p.values())).shape
        self.output = output or OutputSpec()
        self.pit_calibration = None if pit_calibration is None else np.sort(pit_calibration, axis=0)
        self.residual_calibration = (
            None if residual_calibration is None else np.sort(residual_calibration, axis=0)
        )
        self.ar_shift, self.ar_var = ar_shift, ar_var
        self.seed = seed
        if not distribution.probabilistic and self.residual_calibration is None:
            self._deterministic = True
        else:
            self._deterministic = False

    # ------------------------------------------------------------------ helpers
    def _scenario(self, r: int) -> dict[str, np.ndarray]:
        return {k: v[r] for k, v in self._p.items()}

    @property
    def _transformed(self) -> bool:
        return self.pit_calibration is not None or self.ar_shift is not None

    def _need_distribution(self, what: str) -> None:
        if self._deterministic:
            raise DPKInputError(
                f"distribution='mse' is deterministic: no {what}. Fit with conformal=True for "
                "calibrated quantiles, or use a probabilistic distribution such as 'normal'."
            )

    def _base_cdf(self, y: np.ndarray) -> np.ndarray:
        if self.residual_calibration is not None:  # mse + conformal: empirical residuals
            mu = self._p[self.distribution.param_names[0]].mean(0)
            res = self.residual_calibration
            out = np.empty(np.broadcast_shapes(y.shape, mu.shape))
            yb = np.broadcast_to(y, out.shape)
            for j in range(self.dim):
                out[..., j] = np.searchsorted(res[:, j], (yb - mu)[..., j], side="right") / len(res)
            return out
        return np.mean(
            [self.distribution.cdf(self._scenario(r), y) for r in range(self.n_scenarios)], axis=0
        )

    def _base_ppf(self, q: np.ndarray) -> np.ndarray:
        """q broadcastable to (H, d) -> values (H, d)."""
        if self.residual_calibration is not None:
            mu = self._p[self.distribution.param_names[0]].mean(0)
            res = self.residual_calibration
            qb = np.broadcast_to(q, mu.shape)
            n = len(res)
            out = np.empty(mu.shape)
            for j in range(self.dim):
                # finite-sample conformal index ceil(q (n + 1)) - 1, clipped to the sample
                idx = np.clip(np.ceil(qb[:, j] * (n + 1)).astype(int) - 1, 0, n - 1)
                out[:, j] = mu[:, j] + res[idx, j]
            return out
        if self.n_scenarios == 1:
            return np.asarray(self.distribution.ppf(self._scenario(0), q), dtype=float)
        comps = np.stack(
            [self.distribution.ppf(self._scenario(r), q) for r in range(self.n_scenarios)]
        )
        lo, hi = comps.min(0), comps.max(0)
        qb = np.broadcast_to(q, lo.shape)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self._base_cdf(mid) < qb
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return np.ceil(hi - 1e-9) if self.distribution.discrete else 0.5 * (lo + hi)

    def _forward_transform(self, u: np.ndarray) -> np.ndarray:
        if self.pit_calibration is not None:
            cal = self.pit_calibration
            out = np.empty_like(u)
            for j in range(self.dim):
                out[..., j] = np.searchsorted(cal[:, j], u[..., j], side="right") / len(cal)
            u = np.clip(out, 0.0, 1.0)
        if self.ar_shift is not None:
            z = special.ndtri(np.clip(u, 1e-12, 1 - 1e-12))
            u = special.ndtr((z - self.ar_shift) / np.sqrt(self.ar_var))
        return u

    def _inverse_transform(self, q: np.ndarray) -> np.ndarray:
        """q (H, d) on the final scale -> level for the base distribution."""
        if self.ar_shift is not None:
            q = special.ndtr(self.ar_shift + np.sqrt(self.ar_var) * special.ndtri(q))
            q = np.clip(q, 1e-15, 1 - 1e-15)  # a wide transform must not reach ppf(0) = -inf
        if self.pit_calibration is not None:
            cal = self.pit_calibration
            n = len(cal)
            out = np.empty_like(q)
            for j in range(self.dim):
                idx = np.clip(np.ceil(q[..., j] * (n + 1)).astype(int) - 1, 0, n - 1)
                out[..., j] = cal[idx, j]
            q = np.clip(out, 1e-6, 1 - 1e-6)
        return q

    def _quantile_array(self, q: np.ndarray) -> np.ndarray:
        """(H, d, Q)."""
        self._need_distribution("quantiles")
        out = np.empty((self.horizon, self.dim, len(q)))
        for i, qi in enumerate(q):
            level = self._inverse_transform(np.full((self.horizon, self.dim), qi))
            out[..., i] = self._base_ppf(level)
        return out

    def _as_y(self, y: Any) -> np.ndarray:
        arr = np.asarray(y, dtype=float)
        if arr.ndim == 1 and self.dim == 1:
            arr = arr[:, None]
        if arr.shape != (self.horizon, self.dim):
            raise DPKInputError(
                f"y has shape {np.shape(y)} but the forecast covers {self.horizon} times x {self.dim} series"
            )
        return arr

    # ------------------------------------------------------------------ wrapping
    def _wrap(self, arr: np.ndarray, extra: tuple[str, Any] | None = None, name: str | None = None):
        o = self.output
        uni = self.dim == 1
        if o.kind == "numpy" or (o.kind != "xarray" and arr.ndim > 3):
            return arr[:, 0] if uni and arr.ndim >= 2 and arr.shape[1] == 1 else arr
        if o.kind == "pandas":
            idx = o.index
            if extra is None:
                if uni:
                    return pd.Series(arr[:, 0], index=idx, name=name or o.name)
                return pd.DataFrame(arr, index=idx, columns=o.columns)
            label, values = extra
            if uni:
                return pd.DataFrame(arr[:, 0, :], index=idx, columns=pd.Index(values, name=label))
            cols = pd.MultiIndex.from_product([o.columns, values], names=["series", label])
            return pd.DataFrame(arr.reshape(len(arr), -1), index=idx, columns=cols)
        import xarray as xr

        dims = ["time"]
        coords: dict[str, Any] = {"time": o.index}
        if uni and arr.shape[1] == 1:
            arr = arr[:, 0]
        else:
            sd = o.series_dim or "series"
            dims.append(sd)
            coords[sd] = o.columns
        if extra is not None:
            dims.append(extra[0])
            coords[extra[0]] = list(extra[1])
        return xr.DataArray(arr, dims=dims, coords=coords, name=name or o.name)

    # ------------------------------------------------------------------ public API
    @property
    def params(self) -> dict[str, Any]:
        """Distribution parameters in original units: (H,)/(H, d) arrays, or (R, H, d) with scenarios."""
        if self.n_scenarios > 1:
            return {k: v.copy() for k, v in self._p.items()}
        return {k: self._wrap(v[0], name=k) for k, v in self._p.items()}

    def mean(self):
        if self._transformed or self.residual_calibration is not None:
            vals = self._quantile_array(QUANTILE_GRID).mean(axis=2)
        else:
            vals = np.mean(
                [self.distribution.mean(self._scenario(r)) for r in range(self.n_scenarios)], axis=0
            )
        return self._wrap(vals, name="mean")

    def var(self):
        if self._transformed or self.residual_calibration is not None:
            vals = self._quantile_array(QUANTILE_GRID).var(axis=2)
        else:
            means = np.stack(
                [self.distribution.mean(self._scenario(r)) for r in range(self.n_scenarios)]
            )
            vars_ = np.stack(
                [self.distribution.var(self._scenario(r)) for r in range(self.n_scenarios)]
            )
            vals = (vars_ + means**2).mean(0) - means.mean(0) ** 2  # law of total variance
        return self._wrap(np.maximum(vals, 0.0), name="var")

    def std(self):
        return self._wrap(np.sqrt(np.asarray(self._unwrap(self.var()))), name="std")

    def _unwrap(self, x: Any) -> np.ndarray:
        a = np.asarray(x, dtype=float)
        return a[:, None] if a.ndim == 1 else a

    def quantile(self, q: Any = DEFAULT_QUANTILES):
        """Quantiles: a scalar q gives the shape of `mean()`; a sequence adds a 'quantile' axis."""
        scalar = np.ndim(q) == 0
        levels = check_levels(q)
        arr = self._quantile_array(levels)
        if scalar:
            return self._wrap(arr[..., 0], name=f"q{levels[0]:g}")
        return self._wrap(arr, extra=("quantile", levels.tolist()), name="quantile")

    quantiles = quantile

    def interval(self, level: float = 0.8):
        """(lower, upper) bounds of the central `level` interval."""
        if not 0 < level < 1:
            raise DPKInputError(f"interval level must lie in (0, 1), got {level}")
        a = (1 - level) / 2
        return self.quantile(a), self.quantile(1 - a)

    def cdf(self, y: Any):
        self._need_distribution("CDF")
        yy = self._as_y(y)
        return self._wrap(self._forward_transform(self._base_cdf(yy)), name="cdf")

    def pit(self, y: Any, seed: int | None = None):
        """Probability integral transform; randomised for discrete distributions."""
        self._need_distribution("PIT")
        yy = self._as_y(y)
        u = self._base_cdf(yy)
        if self.distribution.discrete:
            lower = self._base_cdf(yy - 1.0)
            v = np.random.default_rng(self.seed if seed is None else seed).uniform(size=u.shape)
            u = lower + v * (u - lower)
        return self._wrap(self._forward_transform(u), name="pit")

    def logpdf(self, y: Any):
        self._need_distribution("likelihood")
        if self.residual_calibration is not None:
            raise DPKInputError(
                "conformal 'mse' forecasts have no density; score them with CRPS/pinball."
            )
        yy = self._as_y(y)
        comps = np.stack(
            [self.distribution.logpdf(self._scenario(r), yy) for r in range(self.n_scenarios)]
        )
        lp = special.logsumexp(comps, axis=0) - np.log(self.n_scenarios)
        if self.ar_shift is not None:  # density of the AR-adjusted copula transform
            z = special.ndtri(np.clip(self._base_cdf(yy), 1e-12, 1 - 1e-12))
            sd = np.sqrt(self.ar_var)
            lp = (
                lp + stats.norm.logpdf((z - self.ar_shift) / sd) - np.log(sd) - stats.norm.logpdf(z)
            )
        return self._wrap(lp, name="logpdf")

    def nll(self, y: Any):
        """Pointwise negative log-likelihood in original units (the conformal map is not included)."""
        return self._wrap(-self._unwrap(self.logpdf(y)), name="nll")

    def sample(self, n: int = 100, seed: int | None = None):
        """n draws: shape (n, H) or (n, H, d); xarray adds a 'sample' dimension."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        if self._deterministic:
            self._need_distribution("samples")
        if self._transformed or self.residual_calibration is not None:
            u = rng.uniform(size=(n, self.horizon, self.dim))
            out = np.stack([self._base_ppf(self._inverse_transform(ui)) for ui in u])
        else:
            draws = np.stack(
                [
                    self.distribution.sample(self._scenario(r), n, rng)
                    for r in range(self.n_scenarios)
                ]
            )
            pick = rng.integers(0, self.n_scenarios, size=(n, self.horizon, self.dim))
            out = np.take_along_axis(draws, pick[None], axis=0)[0]
        if self.output.kind == "xarray":
            import xarray as xr

            da = self._wrap(out.transpose(1, 2, 0), extra=("sample", np.arange(n)), name="sample")
            return da.transpose("sample", ...) if isinstance(da, xr.DataArray) else da
        return out[..., 0] if self.dim == 1 else out

    def to_pandas(self) -> pd.DataFrame:
        """One row per time: mean, std, parameters and deciles (one column block per series)."""
        frames = {}
        mean, std = self._unwrap(self.mean()), self._unwrap(self.std())
        quant = None if self._deterministic else self._quantile_array(np.asarray(DEFAULT_QUANTILES))
        names = self.output.columns or [f"y{j}" for j in range(self.dim)]
        for j, col in enumerate(names):
            data = {"mean": mean[:, j], "std": std[:, j]}
            for k, v in self._p.items():
                data[k] = v.mean(0)[:, j]
            if quant is not None:
                for i, q in enumerate(DEFAULT_QUANTILES):
                    data[f"q{q:g}"] = quant[:, j, i]
            frames[col] = pd.DataFrame(data, index=self.output.index)
        if len(frames) == 1:
            return next(iter(frames.values()))
        return pd.concat(frames, axis=1)

    def to_xarray(self):
        """xarray Dataset with mean, std, parameters and deciles."""
        import xarray as xr

        out = OutputSpec(
            "xarray",
            self.output.index if self.output.index is not None else np.arange(self.horizon),
            self.output.columns,
            self.output.series_dim,
            self.output.name,
        )
        saved, self.output = self.output, out
        try:
            ds = xr.Dataset({"mean": self.mean(), "std": self.std()})
            if self.n_scenarios == 1:
                for k, v in self._p.items():
                    ds[k] = self._wrap(v[0], name=k)
            if not self._deterministic:
                ds["quantile_values"] = self.quantile(DEFAULT_QUANTILES)
        finally:
            self.output = saved
        ds.attrs["distribution"] = self.distribution.name
        return ds

    def __repr__(self) -> str:
        return (
            f"Forecast(distribution={self.distribution.name!r}, horizon={self.horizon}, "
            f"series={self.dim}, scenarios={self.n_scenarios})"
        )
