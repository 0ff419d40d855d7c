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
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats as sps

from .errors import ConfigError
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
        h = float(p)
    else:
        try:
            h = pd.Timedelta(p) / pd.Timedelta("1h")
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"period={p!r} is not a duration ({exc}); give one like '24h' or '168h'."
            ) from None
    if not h > 0:
        raise ConfigError(f"period {p!r} must be a positive duration such as '24h'.")
    return h


def _hours(times: pd.DatetimeIndex, t0: pd.Timestamp) -> np.ndarray:
    return np.asarray((times - t0) / pd.Timedelta("1h"), dtype=float)


@dataclass
class HarmonicForecaster:
    """Least-squares harmonic regression: the linear special case of a Koopman forecaster."""

    periods: tuple[str, ...] = ("24h", "168h", "8766h")
    harmonics: tuple[int, ...] | None = None  # per period; default 3 for <= 168 h, else 2
    trend: bool = True
    scale_by_hour: bool = True
    ridge: float = 1e-6
    coef_: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def _harmonics(self) -> tuple[int, ...]:
        if self.harmonics is None:
            return tuple(3 if parse_period_hours(p) <= 168 else 2 for p in self.periods)
        if len(self.harmonics) != len(self.periods):
            raise ValueError(
                f"harmonics {self.harmonics} must give one count per period {self.periods}."
            )
        return tuple(self.harmonics)

    def _design(self, times: pd.DatetimeIndex, covariates: np.ndarray | None) -> np.ndarray:
        h = _hours(times, self.t0_)
        cols = [np.ones_like(h)]
        if self.trend:
            cols.append(h / self.span_)
        for per, nh in zip(self.periods, self._harmonics(), strict=True):
            if parse_period_hours(per) > self.max_period_:
                continue
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
        # a period longer than the training span cannot be estimated (it would extrapolate wildly)
        self.max_period_ = self.span_
        dropped = [p for p in self.periods if parse_period_hours(p) > self.max_period_]
        if dropped:
            warnings.warn(
                f"periods {dropped} are longer than the training span ({self.span_:.0f} h) and are left "
                "out of the harmonic model; train on at least one full cycle to include them.",
                stacklevel=2,
            )
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
            harmonics=None if d["harmonics"] is None else tuple(d["harmonics"]),
            trend=d["trend"],
            scale_by_hour=d["scale_by_hour"],
            ridge=d["ridge"],
        )
        m.coef_ = np.asarray(d["coef_"])
        m.t0_ = pd.Timestamp(d["t0"])
        m.span_ = float(d["span"])
        m.max_period_ = float(d.get("max_period", m.span_))
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
    """Adapter around `koopman_dpk.DPK` (Normal on the analysis scale by default).

    koopman_dpk needs at least two cycles of every pinned period; a longer period (the annual
    cycle on 18 months of training data) enters as cos/sin covariates instead.
    """

    periods: tuple[str, ...] = ("24h", "168h", "8766h")
    distribution: str = "normal"
    epochs: int = 60
    hidden: tuple[int, ...] = (64, 32)
    val: str = "blocks"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def _harmonic_covariates(self, times: pd.DatetimeIndex) -> np.ndarray | None:
        if not self.cov_periods_:
            return None
        h = _hours(pd.DatetimeIndex(times), self.t0_)
        cols = []
        for p in self.cov_periods_:
            w = 2 * np.pi / parse_period_hours(p)
            cols += [np.cos(w * h), np.sin(w * h)]
        return np.column_stack(cols)

    def _all_cov(self, times: pd.DatetimeIndex, covariates: np.ndarray | None) -> np.ndarray | None:
        parts = []
        if covariates is not None and np.size(covariates):
            parts.append(np.asarray(covariates, dtype=float).reshape(len(times), -1))
        hc = self._harmonic_covariates(times)
        if hc is not None:
            parts.append(hc)
        return np.column_stack(parts) if parts else None

    def _make(self) -> Any:
        from koopman_dpk import DPK

        kw: dict[str, Any] = dict(
            distribution=self.distribution,
            periods=list(self.pinned_),
            epochs=self.epochs,
            hidden=tuple(self.hidden),
            seed=self.seed,
            val=self.val,
        )
        kw.update(self.extra)
        return DPK(**kw)

    def fit(
        self, y: np.ndarray, times: pd.DatetimeIndex, covariates: np.ndarray | None = None
    ) -> DPKForecaster:
        y = np.asarray(y, dtype=float)
        times = pd.DatetimeIndex(times)
        self.t0_ = times[0]
        ok = np.isfinite(y)
        n_ok = int(ok.sum())
        self.pinned_ = [p for p in self.periods if 2 * parse_period_hours(p) <= n_ok]
        self.cov_periods_ = [p for p in self.periods if p not in self.pinned_]
        c = self._all_cov(times, covariates)
        if c is not None:
            ok &= np.isfinite(c).all(1)
        self.model_ = self._make()
        series = pd.Series(y[ok], index=times[ok])
        if c is not None:
            self.model_.fit(series, covariates=c[ok])
        else:
            self.model_.fit(series)
        self.n_parameters_ = int(getattr(self.model_, "n_parameters_", 0))
        return self

    def predict(self, times: pd.DatetimeIndex, covariates: np.ndarray | None = None) -> Any:
        times = pd.DatetimeIndex(times)
        c = self._all_cov(times, covariates)
        if c is not None:
            fc = self.model_.predict(times, covariates=np.nan_to_num(c))
        else:
            fc = self.model_.predict(times)
        return _ArrayPredictive(fc)

    def save(self, path: str | Path) -> None:
        self.model_.save(Path(path) / "dpk", overwrite=True)
        meta = {
            "kind": "dpk",
            **asdict(self),
            "t0": str(self.t0_),
            "pinned": list(self.pinned_),
            "cov_periods": list(self.cov_periods_),
        }
        write_json_atomic(meta, Path(path) / "model.json")

    @classmethod
    def load(cls, path: str | Path) -> DPKForecaster:
        from koopman_dpk import DPK

        d = json.loads((Path(path) / "model.json").read_text())
        d.pop("kind")
        t0, pinned, cov_periods = d.pop("t0"), d.pop("pinned"), d.pop("cov_periods")
        m = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        m.t0_, m.pinned_, m.cov_periods_ = pd.Timestamp(t0), pinned, cov_periods
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
    classes = {"dpk": DPKForecaster, "harmonic": HarmonicForecaster}
    if kind not in classes:
        raise ConfigError(f"forecaster must be 'auto', 'dpk' or 'harmonic', got {kind!r}.")
    cls = classes[kind]
    valid = sorted(f.name for f in fields(cls) if not f.name.endswith("_"))
    bad = sorted(set(kw) - set(valid))
    if bad:
        raise ConfigError(
            f"option(s) {bad} are not accepted by the {kind} forecaster; valid: {valid}."
        )
    return cls(**kw)


def load_forecaster(path: str | Path) -> Any:
    d = json.loads((Path(path) / "model.json").read_text())
    if d.get("kind") == "dpk":
        return DPKForecaster.load(path)
    return HarmonicForecaster.load(path)
