"""Forecasters: a small Protocol plus two implementations.

Anything with ``fit(y, times, covariates)`` and ``predict(times, covariates)`` returning an
object with ``mean()`` and ``std()`` (and optionally ``cdf(y)``) can drive the detector.

- `DPKForecaster`: wraps `koopman_dpk.DPK` (the default when koopman_dpk is importable).
- `HarmonicForecaster`: a linear Koopman-style model, exact least squares on pinned Fourier
  features (24 h, 168 h, 8766 h), a linear trend and covariates, with a Normal predictive whose
  scale varies by hour of day. Fast and deterministic; used for grids, null sweeps and tests.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats as sps

from .io import write_json_atomic


@runtime_checkable
class Predictive(Protocol):
    def mean(self) -> np.ndarray: ...

    def std(self) -> np.ndarray: ...


@runtime_checkable
class Forecaster(Protocol):
    def fit(
        self, y: np.ndarray, times: pd.DatetimeIndex, covariates: np.ndarray | None = None
    ) -> Any: ...

    def predict(
        self, times: pd.DatetimeIndex, covariates: np.ndarray | None = None
    ) -> Predictive: ...


@dataclass
class NormalPredictive:
    mu: np.ndarray
    sigma: np.ndarray

    def mean(self) -> np.ndarray:
        return self.mu

    def std(self) -> np.ndarray:
        return self.sigma

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return sps.norm.cdf((np.asarray(y) - self.mu) / self.sigma)


def parse_period_hours(p: str | float) -> float:
    if isinstance(p, int | float):
        return float(p)
    return pd.Timedelta(p) / pd.Timedelta("1h")


def _hours(times: pd.DatetimeIndex, t0: pd.Timestamp) -> np.ndarray:
    return np.asarray((times - t0) / pd.Timedelta("1h"), dtype=float)


@dataclass
class HarmonicForecaster:
    """Least-squares harmonic regression: the linear special case of a Koopman forecaster."""

    periods: tuple[str, ...] = ("24h", "168h", "8766h")
    harmonics: tuple[int, ...] = (3, 3, 2)
    trend: bool = True
    scale_by_hour: bool = True
    ridge: float = 1e-6
    coef_: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def _design(self, times: pd.DatetimeIndex, covariates: np.ndarray | None) -> np.ndarray:
        h = _hours(times, self.t0_)
        cols = [np.ones_like(h)]
        if self.trend:
            cols.append(h / self.span_)
        for per, nh in zip(self.periods, self.harmonics, strict=True):
            w = 2 * np.pi / parse_period_hours(per)
            for m in range(1, nh + 1):
                cols += [np.cos(m * w * h), np.sin(m * w * h)]
        X = np.column_stack(cols)
        if covariates is not None and np.size(covariates):
            c = np.asarray(covariates, dtype=float).reshape(len(times), -1)
            X = np.column_stack([X, (c - self.cov_mean_) / self.cov_sd_])
        return X

    def fit(
        self, y: np.ndarray, times: pd.DatetimeIndex, covariates: np.ndarray | None = None
    ) -> HarmonicForecaster:
        y = np.asarray(y, dtype=float)
        times = pd.DatetimeIndex(times)
        self.t0_ = times[0]
        self.span_ = max(1.0, float(_hours(times[-1:], self.t0_)[0]))
        if covariates is not None and np.size(covariates):
            c = np.asarray(covariates, dtype=float).reshape(len(times), -1)
            self.cov_mean_ = np.nanmean(c, axis=0)
            sd = np.nanstd(c, axis=0)
            if np.any(sd == 0):
                raise ValueError("a covariate is constant over training; drop it.")
            self.cov_sd_ = sd
        else:
            self.cov_mean_ = self.cov_sd_ = np.zeros(0)
        X = self._design(times, covariates)
        ok = np.isfinite(y) & np.isfinite(X).all(1)
        if ok.sum() < X.shape[1] + 10:
            raise ValueError(
                f"only {int(ok.sum())} valid training points for {X.shape[1]} features."
            )
        A = X[ok].T @ X[ok] + self.ridge * np.eye(X.shape[1])
        self.coef_ = np.linalg.solve(A, X[ok].T @ y[ok])
        r = y[ok] - X[ok] @ self.coef_
        hour = times.hour.values[ok]
        self.sd_hour_ = np.full(24, float(np.std(r)))
        if self.scale_by_hour:
            for hh in range(24):
                sel = hour == hh
                if sel.sum() > 20:
                    self.sd_hour_[hh] = float(np.std(r[sel]))
        self.n_parameters_ = int(self.coef_.size + 24)
        return self

    def predict(
        self, times: pd.DatetimeIndex, covariates: np.ndarray | None = None
    ) -> NormalPredictive:
        times = pd.DatetimeIndex(times)
        X = self._design(times, covariates)
        mu = X @ self.coef_
        sigma = self.sd_hour_[times.hour.values]
        return NormalPredictive(mu, sigma)

    # persistence (JSON, open format)
    def save(self, path: str | Path) -> None:
        d = asdict(self)
        d["coef_"] = self.coef_.tolist()
        d.update(
            {
                "kind": "harmonic",
                "t0": str(self.t0_),
                "span": self.span_,
                "cov_mean": self.cov_mean_.tolist(),
                "cov_sd": self.cov_sd_.tolist(),
                "sd_hour": self.sd_hour_.tolist(),
            }
        )
        write_json_atomic(d, Path(path) / "model.json")

    @classmethod
    def load(cls, path: str | Path) -> HarmonicForecaster:
        d = json.loads((Path(path) / "model.json").read_text())
        m = cls(
            periods=tuple(d["periods"]),
            harmonics=tuple(d["harmonics"]),
            trend=d["trend"],
            scale_by_hour=d["scale_by_hour"],
            ridge=d["ridge"],
        )
        m.coef_ = np.asarray(d["coef_"])
        m.t0_ = pd.Timestamp(d["t0"])
        m.span_ = float(d["span"])
        m.cov_mean_ = np.asarray(d["cov_mean"])
        m.cov_sd_ = np.asarray(d["cov_sd"])
        m.sd_hour_ = np.asarray(d["sd_hour"])
        return m


def dpk_available() -> bool:
    try:
        import koopman_dpk

        return hasattr(koopman_dpk, "DPK")
    except ImportError:
        return False


@dataclass
class DPKForecaster:
    """Adapter around `koopman_dpk.DPK` (Normal on the analysis scale by default)."""

    periods: tuple[str, ...] = ("24h", "168h", "8766h")
    distribution: str = "normal"
    epochs: int = 60
    hidden: tuple[int, ...] = (64, 32)
    val: str = "blocks"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def _make(self) -> Any:
        from koopman_dpk import DPK

        kw: dict[str, Any] = dict(
            distribution=self.distribution,
            periods=list(self.periods),
            epochs=self.epochs,
            hidden=tuple(self.hidden),
            seed=self.seed,
        )
        kw.update(self.extra)
        try:
            return DPK(val=self.val, **kw)
        except (TypeError, ValueError):
            return DPK(**kw)

    def fit(
        self, y: np.ndarray, times: pd.DatetimeIndex, covariates: np.ndarray | None = None
    ) -> DPKForecaster:
        y = np.asarray(y, dtype=float)
        ok = np.isfinite(y)
        if covariates is not None and np.size(covariates):
            c = np.asarray(covariates, dtype=float).reshape(len(y), -1)
            ok &= np.isfinite(c).all(1)
            cov = c[ok]
        else:
            cov = None
        self.model_ = self._make()
        series = pd.Series(y[ok], index=pd.DatetimeIndex(times)[ok])
        self.model_.fit(series, covariates=cov) if cov is not None else self.model_.fit(series)
        self.n_parameters_ = int(getattr(self.model_, "n_parameters_", 0))
        return self

    def predict(self, times: pd.DatetimeIndex, covariates: np.ndarray | None = None) -> Any:
        times = pd.DatetimeIndex(times)
        if covariates is not None and np.size(covariates):
            c = np.nan_to_num(np.asarray(covariates, dtype=float).reshape(len(times), -1))
            fc = self.model_.predict(times, covariates=c)
        else:
            fc = self.model_.predict(times)
        return _ArrayPredictive(fc)

    def save(self, path: str | Path) -> None:
        self.model_.save(Path(path) / "dpk", overwrite=True)
        write_json_atomic(
            {"kind": "dpk", **{k: v for k, v in asdict(self).items()}}, Path(path) / "model.json"
        )

    @classmethod
    def load(cls, path: str | Path) -> DPKForecaster:
        from koopman_dpk import DPK

        d = json.loads((Path(path) / "model.json").read_text())
        d.pop("kind")
        m = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        m.model_ = DPK.load(Path(path) / "dpk")
        return m


class _ArrayPredictive:
    """Normalises a koopman_dpk Forecast to numpy arrays."""

    def __init__(self, fc: Any):
        self.fc = fc

    @staticmethod
    def _np(a: Any) -> np.ndarray:
        return np.asarray(getattr(a, "values", a), dtype=float).reshape(-1)

    def mean(self) -> np.ndarray:
        return self._np(self.fc.mean())

    def std(self) -> np.ndarray:
        return self._np(self.fc.std())

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return self._np(self.fc.cdf(np.asarray(y, dtype=float)))


def make_forecaster(kind: str = "auto", **kw: Any) -> Any:
    """'auto' -> DPK when koopman_dpk provides `DPK`, else the harmonic model."""
    if kind == "auto":
        kind = "dpk" if dpk_available() else "harmonic"
    if kind == "dpk":
        return DPKForecaster(**kw)
    if kind == "harmonic":
        return HarmonicForecaster(**kw)
    raise ValueError(f"forecaster must be 'auto', 'dpk' or 'harmonic', got {kind!r}.")


def load_forecaster(path: str | Path) -> Any:
    d = json.loads((Path(path) / "model.json").read_text())
    if d.get("kind") == "dpk":
        return DPKForecaster.load(path)
    return HarmonicForecaster.load(path)
