"""The map between user times and the model's time tau = (t - t0) / u.

Datetimes use u = 1 hour and are converted to UTC when tz-aware; plain arrays use the step index
(or the numeric times given).  Fit and predict share the map: t0, u and the kind are stored with
the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import DPKInputError

HOUR_NS = 3_600_000_000_000


def _as_datetime_index(times: Any) -> pd.DatetimeIndex | None:
    """DatetimeIndex if `times` holds datetimes, else None. Mixed naive/aware is an error."""
    if isinstance(times, pd.DatetimeIndex):
        return times
    if isinstance(times, pd.Series) and pd.api.types.is_datetime64_any_dtype(times):
        return pd.DatetimeIndex(times)
    arr = np.asarray(times)
    if np.issubdtype(arr.dtype, np.datetime64):
        return pd.DatetimeIndex(arr)
    if (
        arr.dtype == object
        and len(arr)
        and isinstance(arr[0], (pd.Timestamp, np.datetime64))
        or (arr.dtype == object and len(arr) and hasattr(arr[0], "year"))
    ):
        aware = [getattr(t, "tzinfo", None) is not None for t in arr]
        if any(aware) and not all(aware):
            first = aware.index(not aware[0])
            raise DPKInputError(
                f"times mix naive and tz-aware timestamps (first switch at index {first}: "
                f"{arr[first]!r}); make them all tz-aware or all naive."
            )
        return pd.DatetimeIndex(pd.to_datetime(arr, utc=all(aware)))
    return None


def _check_no_nat(dti: pd.DatetimeIndex) -> None:
    if dti.hasnans:
        i = int(np.argmax(dti.isna()))
        raise DPKInputError(f"times contain a missing timestamp (NaT) at index {i}; remove it.")


def check_monotonic(values: np.ndarray, labels: Any = None) -> None:
    """Raise a DPKInputError naming the first duplicate or out-of-order time."""
    d = np.diff(values)
    if np.any(d == 0):
        i = int(np.argmax(d == 0)) + 1
        lab = labels[i] if labels is not None else values[i]
        raise DPKInputError(
            f"duplicate timestamp at position {i} ({lab}); aggregate or drop duplicates first "
            "(e.g. df.groupby(level=0).mean())."
        )
    if np.any(d < 0):
        i = int(np.argmax(d < 0)) + 1
        lab = labels[i] if labels is not None else values[i]
        raise DPKInputError(
            f"timestamps are not increasing: position {i} ({lab}) comes before its predecessor; "
            "sort the series by time first (or pass sort=True to fit)."
        )


@dataclass
class TimeAxis:
    """How raw times map onto tau. `kind` is 'datetime' or 'numeric'."""

    kind: str
    t0: float
    unit: float
    tz: str | None = None
    step: float = 1.0  # median training spacing, in tau units
    end: float = 0.0  # last training tau

    @classmethod
    def fit(cls, times: Any) -> tuple[TimeAxis, np.ndarray]:
        dti = _as_datetime_index(times)
        if dti is not None:
            tz = None if dti.tz is None else "UTC"
            if dti.tz is not None:
                dti = dti.tz_convert("UTC")
            _check_no_nat(dti)
            ns = dti.asi8.astype(np.float64)
            check_monotonic(ns, dti)
            axis = cls("datetime", float(ns[0]), float(HOUR_NS), tz)
            tau = (ns - axis.t0) / axis.unit
        else:
            vals = np.asarray(times, dtype=float)
            if vals.ndim != 1:
                raise DPKInputError(f"times must be one-dimensional, got shape {vals.shape}")
            if not np.all(np.isfinite(vals)):
                i = int(np.argmax(~np.isfinite(vals)))
                raise DPKInputError(f"times contain a non-finite value at index {i}; remove it.")
            check_monotonic(vals)
            axis = cls("numeric", float(vals[0]), 1.0)
            tau = vals - axis.t0
        axis.step = float(np.median(np.diff(tau))) if len(tau) > 1 else 1.0
        axis.end = float(tau[-1]) if len(tau) else 0.0
        return axis, tau

    def to_tau(self, times: Any) -> np.ndarray:
        if np.ndim(times) == 0 or len(times) == 0:
            raise DPKInputError("times is empty; pass at least one time to forecast.")
        if self.kind == "datetime":
            dti = _as_datetime_index(times)
            if dti is None:
                raise DPKInputError(
                    "the model was fitted on datetimes; pass datetimes (or a DatetimeIndex) to predict."
                )
            _check_no_nat(dti)
            if dti.tz is not None:
                if self.tz is None:
                    raise DPKInputError(
                        "the model was fitted on naive times; pass naive times (e.g. "
                        "times.tz_convert(<the training zone>).tz_localize(None))."
                    )
                dti = dti.tz_convert("UTC")
            elif self.tz is not None:
                raise DPKInputError("the model was fitted on tz-aware times; pass tz-aware times.")
            return (dti.asi8.astype(np.float64) - self.t0) / self.unit
        vals = np.asarray(times)
        if np.issubdtype(vals.dtype, np.datetime64):
            raise DPKInputError(
                "the model was fitted on numeric times; pass numbers, not datetimes."
            )
        vals = vals.astype(float)
        if not np.all(np.isfinite(vals)):
            i = int(np.argmax(~np.isfinite(vals)))
            raise DPKInputError(f"times contain a non-finite value at index {i}; remove it.")
        return vals - self.t0

    def from_tau(self, tau: np.ndarray) -> Any:
        if self.kind == "datetime":
            ns = np.round(np.asarray(tau) * self.unit + self.t0).astype(np.int64)
            idx = pd.DatetimeIndex(ns.view("datetime64[ns]"))
            return idx.tz_localize("UTC") if self.tz else idx
        return np.asarray(tau) + self.t0

    def future_tau(self, horizon: int) -> np.ndarray:
        """tau of the `horizon` steps after the end of training."""
        if int(horizon) < 1:
            raise DPKInputError(f"horizon must be a positive number of steps, got {horizon}")
        return self.end + self.step * np.arange(1, int(horizon) + 1)

    def period_to_tau(self, period: Any) -> float:
        """A period as a number of tau units: numbers pass through; '24h' needs a datetime axis."""
        if isinstance(period, str):
            try:
                td = pd.Timedelta(period)
            except ValueError as exc:
                raise DPKInputError(
                    f"cannot parse period {period!r}; use e.g. '24h' or '7D'"
                ) from exc
            if self.kind != "datetime":
                # numeric axis: interpret as hours is meaningless; refuse clearly
                raise DPKInputError(
                    f"period {period!r} is a duration but the series has no datetime index; "
                    "give periods as numbers of steps, e.g. periods=[48, 336]."
                )
            return td.value / self.unit
        if isinstance(period, pd.Timedelta):
            return period.value / self.unit
        return float(period)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TimeAxis:
        return cls(**d)
