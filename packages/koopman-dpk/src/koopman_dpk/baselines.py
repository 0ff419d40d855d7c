"""Baselines with quantile forecasts, run side by side with DPK.

Every baseline has `fit(y: pd.Series, covariates=None)` and
`predict_quantiles(times, levels, covariates=None) -> (H, Q)` (plus `predict_mean`).
`StatsforecastModel` needs the optional `statsforecast` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .errors import DPKInputError
from .freqsearch import find_periods


def _regular(y: pd.Series) -> pd.Series:
    """Baselines need a gap-free grid: NaNs are linearly interpolated (declared, not silent)."""
    if y.isna().any():
        y = y.interpolate(limit_direction="both")
    return y


def _levels(levels: Sequence[float]) -> np.ndarray:
    q = np.asarray(levels, dtype=float)
    if np.any((q <= 0) | (q >= 1)):
        raise DPKInputError("quantile levels must lie in (0, 1)")
    return q


class SeasonalNaive:
    """y_hat(T + h) = y(T + h - m k), with Normal intervals sigma * sqrt(k) (k = seasons ahead)."""

    def __init__(self, season: int):
        self.season = int(season)
        self.name = f"SeasonalNaive({self.season})"

    def fit(self, y: pd.Series, covariates: Any = None) -> SeasonalNaive:
        v = _regular(y).to_numpy(float)
        m = self.season
        if len(v) <= m:
            raise DPKInputError(f"SeasonalNaive({m}) needs more than {m} points")
        self.last_ = v[-m:]
        self.sigma_ = float(np.std(v[m:] - v[:-m], ddof=1))
        return self

    def predict_mean(self, horizon: int) -> np.ndarray:
        h = np.arange(horizon)
        return self.last_[h % self.season]

    def predict_quantiles(
        self, horizon: int, levels: Sequence[float], covariates: Any = None
    ) -> np.ndarray:
        q = _levels(levels)
        k = np.arange(horizon) // self.season + 1
        sd = self.sigma_ * np.sqrt(k)
        return self.predict_mean(horizon)[:, None] + sd[:, None] * stats.norm.ppf(q)[None, :]


class FourierBaseline:
    """Greedy Fourier linear model (Lange): found periods, least-squares amplitudes and a linear
    trend, Normal residuals."""

    def __init__(self, n_periods: int = 3, periods: Sequence[float] | None = None):
        self.n_periods = n_periods
        self.periods = periods
        self.name = "Fourier"

    def _design(self, t: np.ndarray) -> np.ndarray:
        cols = [np.ones_like(t), t / self.span_]
        for p in self.periods_:
            w = 2 * np.pi / p
            cols += [np.cos(w * t), np.sin(w * t)]
        return np.stack(cols, 1)

    def fit(self, y: pd.Series, covariates: Any = None) -> FourierBaseline:
        v = _regular(y).to_numpy(float)
        t = np.arange(len(v), dtype=float)
        self.span_ = max(t[-1], 1.0)
        self.periods_ = (
            list(self.periods)
            if self.periods
            else find_periods(v - np.polyval(np.polyfit(t, v, 1), t), n_periods=self.n_periods)
        )
        X = self._design(t)
        self.beta_, *_ = np.linalg.lstsq(X, v, rcond=None)
        self.sigma_ = float(np.std(v - X @ self.beta_))
        self.n_ = len(v)
        return self

    def predict_mean(self, horizon: int) -> np.ndarray:
        t = self.n_ + np.arange(horizon, dtype=float)
        return self._design(t) @ self.beta_

    def predict_quantiles(
        self, horizon: int, levels: Sequence[float], covariates: Any = None
    ) -> np.ndarray:
        q = _levels(levels)
        return self.predict_mean(horizon)[:, None] + self.sigma_ * stats.norm.ppf(q)[None, :]


class StatsforecastModel:
    """statsforecast MSTL / AutoETS / SeasonalNaive with `level=` prediction intervals turned into
    quantiles: q < 0.5 is the lower bound of the (1 - 2q) interval, q > 0.5 the upper bound."""

    def __init__(
        self, model: str = "MSTL", season_length: int | Sequence[int] = 24, freq: str | None = None
    ):
        self.model = model
        self.season_length = season_length
        self.freq = freq
        self.name = model

    def _make(self):
        try:
            from statsforecast import models as sfm
        except ImportError as exc:  # pragma: no cover
            raise DPKInputError(
                "StatsforecastModel needs the optional package 'statsforecast'"
            ) from exc
        if self.model == "MSTL":
            sl = list(np.atleast_1d(self.season_length).astype(int))
            return sfm.MSTL(season_length=sl, trend_forecaster=sfm.AutoETS(model="ZZN"))
        if self.model == "AutoETS":
            return sfm.AutoETS(season_length=int(np.atleast_1d(self.season_length)[0]))
        if self.model == "SeasonalNaive":
            return sfm.SeasonalNaive(season_length=int(np.atleast_1d(self.season_length)[0]))
        raise DPKInputError(
            f"unknown statsforecast model {self.model!r}; use MSTL, AutoETS or SeasonalNaive"
        )

    def fit(self, y: pd.Series, covariates: Any = None) -> StatsforecastModel:
        self.model_ = self._make()
        self.model_.fit(_regular(y).to_numpy(float))
        return self

    def predict_mean(self, horizon: int) -> np.ndarray:
        return np.asarray(self.model_.predict(h=horizon)["mean"], dtype=float)

    def predict_quantiles(
        self, horizon: int, levels: Sequence[float], covariates: Any = None
    ) -> np.ndarray:
        q = _levels(levels)
        ints = sorted({int(round(100 * abs(1 - 2 * x))) for x in q if abs(x - 0.5) > 1e-9})
        ints = [i for i in ints if 0 < i < 100]
        out = self.model_.predict(h=horizon, level=ints) if ints else self.model_.predict(h=horizon)
        res = np.empty((horizon, len(q)))
        for j, x in enumerate(q):
            lv = int(round(100 * abs(1 - 2 * x)))
            if lv == 0:
                res[:, j] = out["mean"]
            else:
                res[:, j] = out[f"lo-{lv}"] if x < 0.5 else out[f"hi-{lv}"]
        return np.sort(res, axis=1)
