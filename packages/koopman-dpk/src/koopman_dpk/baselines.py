"""Baselines with quantile forecasts, run side by side with DPK.

Every baseline has `fit(y: pd.Series, covariates=None)` and
`predict_quantiles(times, levels, covariates=None) -> (H, Q)` (plus `predict_mean`).
`StatsforecastModel` needs the optional `statsforecast` package.
"""

from __future__ import annotations

import warnings
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


class VanillaMLR:
    """Hong's GEFCom Vanilla benchmark: OLS on trend + M + W + H + W:H + (T, T^2, T^3)
    + (T, T^2, T^3):M + (T, T^2, T^3):H, with the calendar taken from the timestamps ('H' is
    the period of the day, so half-hourly data gets 48 levels).

    Probabilistic forecasts come from temperature scenarios (Xie & Hong); the q-quantile is
    sorted[floor(q n)] over the n scenario forecasts. `temperature` is the full temperature
    series.

    * `scenarios="past_years"` (Hong's): the temperatures of the same calendar dates in each of
      the `n_years` years before the test (fewer if the history is shorter), each shifted by
      -4..+4 days: 99 scenarios for 11 years. Only temperatures before the forecast origin are
      read, so it is ex ante. At least `min_years` past years must cover the test dates.
    * `scenarios="shifted"` (ex post, for spans under 3 years): the actual test-period
      temperature shifted by -4..+4 days.
    * `scenarios="auto"` (default): past years when `min_years` of them cover the test dates,
      else shifted (with a warning that says so).
    """

    def __init__(
        self,
        temperature: pd.Series,
        column: str = "Temperature",
        shift_days: int = 4,
        scenarios: str = "auto",
        n_years: int = 11,
        min_years: int = 3,
    ):
        if scenarios not in ("auto", "past_years", "shifted"):
            raise DPKInputError(
                f"scenarios must be 'auto', 'past_years' or 'shifted', got {scenarios!r}"
            )
        self.temperature = temperature.sort_index()
        self.column = column
        self.shift_days = shift_days
        self.scenarios = scenarios
        self.n_years = int(n_years)
        self.min_years = int(min_years)
        self.name = "Vanilla"

    def _design(self, idx: pd.DatetimeIndex, temp: np.ndarray) -> np.ndarray:
        slot = ((idx.hour * 60 + idx.minute) // self.step_min_).to_numpy()
        month = idx.month.to_numpy() - 1
        wday = idx.dayofweek.to_numpy()
        n = len(idx)
        trend = ((idx - self.t0_) / pd.Timedelta(days=365.25)).to_numpy(float)

        def onehot(v, k):
            out = np.zeros((n, k))
            out[np.arange(n), v] = 1.0
            return out

        M, W, H = onehot(month, 12), onehot(wday, 7), onehot(slot, self.n_slots_)
        WH = onehot(wday * self.n_slots_ + slot, 7 * self.n_slots_)
        t = (temp - self.t_mean_) / self.t_std_
        T = np.stack([t, t**2, t**3], 1)
        TM = (T[:, :, None] * M[:, None, :]).reshape(n, -1)
        TH = (T[:, :, None] * H[:, None, :]).reshape(n, -1)
        return np.concatenate([np.ones((n, 1)), trend[:, None], M, W, H, WH, T, TM, TH], axis=1)

    def fit(self, y: pd.Series, covariates: pd.DataFrame | None = None) -> VanillaMLR:
        if not isinstance(y.index, pd.DatetimeIndex):
            raise DPKInputError(
                "VanillaMLR needs a DatetimeIndex (its calendar comes from timestamps)"
            )
        step = pd.Series(y.index).diff().median()
        self.step_min_ = max(int(step / pd.Timedelta(minutes=1)), 1)
        self.n_slots_ = max(1440 // self.step_min_, 1)
        self.t0_ = y.index[0]
        temp = self.temperature.reindex(y.index).to_numpy(float)
        self.t_mean_, self.t_std_ = float(np.nanmean(temp)), float(np.nanstd(temp))
        ok = np.isfinite(temp) & y.notna().to_numpy()
        X = self._design(y.index[ok], temp[ok])
        self.beta_, *_ = np.linalg.lstsq(X, y.to_numpy(float)[ok], rcond=None)
        return self

    def _shifts(self) -> list[pd.Timedelta]:
        return [pd.Timedelta(days=d) for d in range(-self.shift_days, self.shift_days + 1)]

    def _past_years(self, idx: pd.DatetimeIndex) -> list[int]:
        """The years k = 1..n_years back whose shifted temperatures, all before the forecast
        origin (idx[0]), cover every test time."""
        known = self.temperature[self.temperature.index < idx[0]].dropna()
        shifts = self._shifts()
        return [
            k
            for k in range(1, self.n_years + 1)
            if all((idx - pd.DateOffset(years=k) + s).isin(known.index).all() for s in shifts)
        ]

    def scenario_temperatures(self, idx: pd.DatetimeIndex) -> np.ndarray:
        """(len(idx), n_scenarios) temperatures of the scenarios used for the test times idx."""
        idx = pd.DatetimeIndex(idx)
        mode = self.scenarios
        years = self._past_years(idx) if mode != "shifted" else []
        if mode == "past_years" and len(years) < self.min_years:
            raise DPKInputError(
                f"past-years scenarios need {self.min_years} past years of temperature at the "
                f"test dates (+-{self.shift_days} days) before {idx[0]}; found {len(years)}. "
                "Give a longer temperature history, lower min_years, or use scenarios='shifted'."
            )
        if mode == "auto" and len(years) < self.min_years:
            warnings.warn(
                f"VanillaMLR: {len(years)} past year(s) of temperature cover the test dates "
                f"(< min_years={self.min_years}); using ex-post 'shifted' scenarios instead.",
                stacklevel=2,
            )
            mode = "shifted"
        base = self.temperature.reindex(idx).to_numpy(float)
        cols = []
        if mode == "shifted":
            for s in self._shifts():
                v = self.temperature.reindex(idx + s).to_numpy(float)
                cols.append(np.where(np.isfinite(v), v, base))
        else:
            for k in years:
                back = idx - pd.DateOffset(years=k)
                cols += [self.temperature.reindex(back + s).to_numpy(float) for s in self._shifts()]
        self.scenarios_used_ = mode
        return np.stack(cols, 1)

    def _scenarios(self, idx: pd.DatetimeIndex) -> np.ndarray:
        temps = self.scenario_temperatures(idx)
        out = [self._design(idx, temps[:, j]) @ self.beta_ for j in range(temps.shape[1])]
        return np.sort(np.stack(out, 1), axis=1)

    def predict_mean(self, horizon: int, covariates: pd.DataFrame | None = None) -> np.ndarray:
        return self._scenarios(covariates.index).mean(axis=1)

    def predict_quantiles(
        self, horizon: int, levels: Sequence[float], covariates: pd.DataFrame | None = None
    ) -> np.ndarray:
        if covariates is None:
            raise DPKInputError(
                "VanillaMLR needs the test covariates (their index gives the calendar)"
            )
        q = _levels(levels)
        sc = self._scenarios(covariates.index)
        n = sc.shape[1]
        return sc[:, np.minimum(np.floor(q * n).astype(int), n - 1)]
