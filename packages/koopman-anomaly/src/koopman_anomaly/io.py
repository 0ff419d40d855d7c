"""netCDF in and out: validation of (time, station) / (time, lat, lon) data, atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .errors import AnomalyError, InvalidDataError

DIM_ALIASES: dict[str, str] = {
    "latitude": "lat",
    "longitude": "lon",
    "site": "station",
    "stations": "station",
    "station_id": "station",
}
STATION_DIMS = ("time", "station")
GRID_DIMS = ("time", "lat", "lon")
LOG_SAFE_UNITS = {
    "ug m-3",
    "ug/m3",
    "ug m**-3",
    "µg m-3",
    "µg/m3",
    "ppb",
    "ppbv",
    "mol mol-1",
    "1e-9",
    "ppm",
    "ppmv",
    "kg m-3",
    "mol m-2",
    "molec cm-2",
    "1",
}


def open_dataset(
    path: str | os.PathLike[str], chunks: Mapping[str, int] | None = None
) -> xr.Dataset:
    """Open a netCDF file with the netCDF4 engine, naming path and engine on failure.

    Without ``chunks`` the data are read into memory and the file is closed; with ``chunks``
    the Dataset is lazy (dask) and the caller closes it.
    """
    p = Path(path)
    if not p.exists():
        raise InvalidDataError(f"{p}: file not found. Check the path (cwd is {Path.cwd()}).")
    if p.is_dir():
        raise InvalidDataError(f"{p} is a directory; give the path of a netCDF file inside it.")
    try:
        import netCDF4  # noqa: F401
    except ImportError as exc:  # pragma: no cover - netCDF4 is a hard dependency
        raise InvalidDataError("the netCDF4 engine is missing: `pip install netCDF4`.") from exc
    try:
        if chunks is not None:  # lazy, dask-backed: the caller streams it
            return xr.open_dataset(p, engine="netcdf4", chunks=chunks)  # type: ignore[arg-type]
        # Eager: read it and close the file at once. Lazily opened netCDF4/HDF5 handles that
        # linger in xarray's file cache and are finalised later by the garbage collector have
        # crashed the interpreter (segfault) when another netCDF file was being opened.
        with xr.open_dataset(p, engine="netcdf4") as ds:
            return ds.load()
    except ValueError as exc:
        if "time" in str(exc).lower() or "decode" in str(exc).lower():
            raise InvalidDataError(
                f"{p}: time axis could not be decoded ({exc}). Give `time` CF units such as "
                "'hours since 1970-01-01 00:00:00' and a standard calendar."
            ) from exc
        raise InvalidDataError(f"{p}: could not be read with engine='netcdf4' ({exc}).") from exc
    except OSError as exc:
        raise InvalidDataError(
            f"{p}: unreadable with engine='netcdf4' ({exc}). Is it a netCDF-4/HDF5 or classic file?"
        ) from exc


def canonical_dims(ds: xr.Dataset) -> xr.Dataset:
    """Rename dimension/coordinate aliases (latitude/longitude, site) to lat/lon/station."""
    ren = {k: v for k, v in DIM_ALIASES.items() if k in ds.dims or k in ds.coords}
    ren = {k: v for k, v in ren.items() if v not in ds.dims and v not in ds.coords}
    return ds.rename(ren) if ren else ds


def layout_of(da: xr.DataArray) -> str:
    """'station' for (time, station), 'grid' for (time, lat, lon); error otherwise."""
    dims = set(da.dims)
    if dims == set(STATION_DIMS):
        return "station"
    if dims == set(GRID_DIMS):
        return "grid"
    raise InvalidDataError(
        f"variable {da.name!r} has dims {tuple(da.dims)}; accepted are (time, station) or "
        f"(time, lat, lon), with aliases {sorted(DIM_ALIASES)}. Rename or transpose the variable."
    )


def check_time(ds: xr.Dataset) -> pd.DatetimeIndex:
    """UTC, strictly increasing, no duplicates. Returns the (tz-naive UTC) index."""
    if "time" not in ds.coords:
        raise InvalidDataError(
            f"no `time` coordinate (coords present: {sorted(map(str, ds.coords))}). "
            "Add a CF time coordinate named `time`."
        )
    values = ds["time"].values
    if not np.issubdtype(values.dtype, np.datetime64):
        raise InvalidDataError(
            f"`time` is not decoded to datetimes (dtype {values.dtype}, first value {values[:1]}). "
            "Give it CF units like 'hours since 1970-01-01' so xarray can decode it. A "
            "timezone-aware axis also ends up here: convert it to naive UTC with "
            "idx.tz_convert('UTC').tz_localize(None)."
        )
    idx = pd.DatetimeIndex(values)
    if idx.isna().any():
        bad = int(np.flatnonzero(idx.isna())[0])
        raise InvalidDataError(
            f"`time` has a missing value at position {bad}; drop or fix that row."
        )
    d = np.diff(idx.asi8)
    if (d == 0).any():
        i = int(np.flatnonzero(d == 0)[0]) + 1
        raise InvalidDataError(
            f"duplicate timestamp {idx[i]} at position {i}; drop duplicates first."
        )
    if (d < 0).any():
        i = int(np.flatnonzero(d < 0)[0]) + 1
        raise InvalidDataError(
            f"time is not increasing at {idx[i]} (position {i}); sort with ds.sortby('time')."
        )
    return idx


def check_units(da: xr.DataArray, transform: str = "log", expected: str | None = None) -> str:
    """A log transform needs a concentration-like `units` attribute; an explicit `expected`
    unit must match exactly. Returns the units string."""
    units = str(da.attrs.get("units", "")).strip()
    if expected is not None and units != expected:
        raise InvalidDataError(
            f"variable {da.name!r} has units {units!r} but {expected!r} was expected; convert it or "
            "pass the matching unit."
        )
    if transform == "log":
        if not units:
            raise InvalidDataError(
                f"variable {da.name!r} has no `units` attribute; set it (e.g. 'ug m-3' or 'ppb') so "
                "the log transform is known to act on a positive concentration."
            )
        if units.lower() in {
            "k",
            "degc",
            "celsius",
            "degrees_celsius",
            "degf",
            "m s-1",
            "m/s",
        } or units.startswith("deg"):
            raise InvalidDataError(
                f"variable {da.name!r} has units {units!r}, not a concentration: transform='log' needs a "
                "positive quantity. Use transform='none' or pick the concentration variable."
            )
    return units


def get_variable(ds: xr.Dataset, var: str) -> xr.DataArray:
    if var not in ds.data_vars:
        raise InvalidDataError(
            f"variable {var!r} not found; variables present: {sorted(map(str, ds.data_vars))}."
        )
    return ds[var]


def validate(
    ds: xr.Dataset, var: str, transform: str = "log", require_coords: Iterable[str] = ()
) -> xr.Dataset:
    """Canonicalise dims, check the variable, time axis, coordinates and units."""
    ds = canonical_dims(ds)
    da = get_variable(ds, var)
    layout = layout_of(da)
    check_time(ds)
    empty = [str(d) for d in da.dims if da.sizes[d] == 0]
    if empty:
        raise InvalidDataError(
            f"variable {var!r} is empty along {empty} (sizes {dict(da.sizes)}); select a "
            "non-empty time range and at least one station or pixel."
        )
    if layout == "station":
        if "station" not in ds.coords:
            raise InvalidDataError("dimension `station` has no coordinate; assign station ids.")
        ids = pd.Index(ds["station"].values)
        if ids.has_duplicates:
            raise InvalidDataError(f"duplicate station ids: {sorted(set(ids[ids.duplicated()]))}.")
    else:
        for c in ("lat", "lon"):
            if c not in ds.coords:
                raise InvalidDataError(f"grid variable {var!r} lacks the `{c}` coordinate; add it.")
    for c in require_coords:
        if c not in ds.coords:
            raise InvalidDataError(
                f"coordinate {c!r} is required but missing (coords: {sorted(map(str, ds.coords))})."
            )
    check_units(da, transform)
    return ds


CF_VARS: dict[str, dict[str, str]] = {
    "obs": {"long_name": "observation on the analysis scale"},
    "mu": {"long_name": "forecast mean on the analysis scale"},
    "sigma": {"long_name": "forecast standard deviation on the analysis scale"},
    "z": {"long_name": "standardised residual Phi^-1(PIT)", "units": "1"},
    "z_ref": {"long_name": "standardised residual of the reference (model twin)", "units": "1"},
    "zeta": {"long_name": "restandardised difference z - beta z_ref", "units": "1"},
    "window_mean": {"long_name": "trailing window mean of e", "units": "1"},
    "window_msq": {"long_name": "trailing window mean square of e", "units": "1"},
    "coverage": {"long_name": "fraction of valid points in the trailing window", "units": "1"},
    "stat": {"long_name": "test statistic at decision times", "units": "1"},
    "p_value": {"long_name": "p-value at decision times", "units": "1"},
    "q_value": {"long_name": "multiplicity-adjusted p-value (q-value)", "units": "1"},
    "flag": {
        "long_name": "anomaly flag",
        "flag_values": "-1 0 1",
        "flag_meanings": "low none high",
    },
    "cusum": {"long_name": "sequential statistic (CUSUM or GLR)", "units": "1"},
}


def add_cf_attrs(ds: xr.Dataset) -> xr.Dataset:
    ds.attrs.setdefault("Conventions", "CF-1.8")
    for name, attrs in CF_VARS.items():
        if name in ds:
            for k, v in attrs.items():
                ds[name].attrs.setdefault(k, v)
    if "time" in ds.coords:
        ds["time"].attrs.update({"standard_name": "time", "axis": "T"})
    return ds


def _check_target(out: Path) -> None:
    if out.is_dir():
        raise AnomalyError(f"{out} is a directory; give a file name such as {out / 'out.nc'}.")


def time_encoding() -> dict[str, Any]:
    return {"units": "hours since 1970-01-01 00:00:00", "calendar": "standard", "dtype": "float64"}


def write_netcdf_atomic(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    compute: bool = True,
    encoding: Mapping[str, dict[str, Any]] | None = None,
) -> Path:
    """Write with netCDF4 (zlib 4) to a temp file in the same folder, then os.replace.

    A killed or failing write never leaves a partial file under the final name, and never
    overwrites a good older file. `encoding` entries replace the default per variable (e.g.
    `{"x": {"zlib": False, "chunksizes": (8760, 15, 30)}}` for a large input cube).
    """
    out = Path(path)
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    enc: dict[str, dict[str, Any]] = {}
    for name, v in ds.data_vars.items():
        if v.dtype.kind in "fiu":
            enc[str(name)] = {"zlib": True, "complevel": 4}
    if "time" in ds.coords and np.issubdtype(ds["time"].dtype, np.datetime64):
        enc["time"] = time_encoding()
    for name, e in (encoding or {}).items():
        enc[str(name)] = dict(e)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=enc, compute=compute)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return out


def write_json_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return out


def check_hourly(times: pd.DatetimeIndex) -> None:
    """Windows, periods and coverage count hourly steps: the axis must be a complete hourly grid."""
    if len(times) < 2:
        return
    d = np.diff(times.asi8)
    hour = pd.Timedelta("1h").value
    if (d == hour).all():
        return
    i = int(np.flatnonzero(d != hour)[0])
    step = pd.Timedelta(int(np.median(d)))
    if step != pd.Timedelta("1h"):
        raise InvalidDataError(
            f"the time step is {step}, not 1 h; windows and periods count hourly steps. "
            "Resample to hourly first, e.g. ds.resample(time='1h').mean()."
        )
    raise InvalidDataError(
        f"the hourly time axis is incomplete: {pd.Timedelta(int(d[i]))} between {times[i]} and "
        f"{times[i + 1]} ({int((d != hour).sum())} irregular steps); windows count steps, so they "
        "would silently span more than their length. Reindex onto a complete hourly axis "
        "(missing hours become NaN gaps): ds.resample(time='1h').asfreq()."
    )
