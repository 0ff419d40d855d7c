"""Realistic synthetic NO2-like data with a model twin and labelled anomalies.

`make_stations` gives a (time, station) Dataset; `make_grid` a (time, lat, lon) one;
`lazy_grid` a dask-backed cube generated chunk by chunk (never held in memory).
Everything is a pure function of `seed` and the parameters, which are stored in attrs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy.signal import lfilter

ANOMALY_NONE, ANOMALY_DROP, ANOMALY_SPIKE = 0, 1, 2
UNITS = "ug m-3"


def ar1(
    rng: np.random.Generator, shape: tuple[int, ...], efold: float, sd: float = 1.0
) -> np.ndarray:
    """AR(1) series along axis 0 with e-folding time `efold` steps and marginal SD `sd`."""
    phi = float(np.exp(-1.0 / efold)) if efold > 0 else 0.0
    return ar1_phi(rng, shape, phi, sd)


def ar1_phi(
    rng: np.random.Generator, shape: tuple[int, ...], phi: float, sd: float = 1.0
) -> np.ndarray:
    innov = rng.standard_normal(shape) * sd * np.sqrt(1.0 - phi**2)
    innov[0] = rng.standard_normal(shape[1:]) * sd  # start in the stationary law
    return lfilter([1.0], [1.0, -phi], innov, axis=0)


def _diurnal_coefs() -> list[tuple[float, float]]:
    """Harmonics 1-2 of a rush-hour profile peaking near 08 h and 19 h."""
    h = np.arange(24.0)
    ref = np.exp(-0.5 * ((h - 8) / 1.8) ** 2) + 0.9 * np.exp(-0.5 * ((h - 19) / 2.2) ** 2)
    w = 2 * np.pi * h / 24
    return [(2 * np.mean(ref * np.cos(k * w)), 2 * np.mean(ref * np.sin(k * w))) for k in (1, 2)]


_DIURNAL = _diurnal_coefs()


def _diurnal(hour: np.ndarray, amp: float = 0.35) -> np.ndarray:
    """Two-harmonic diurnal cycle (zero mean, peak-to-peak 2*amp)."""

    def curve(x: np.ndarray) -> np.ndarray:
        wt = 2 * np.pi * np.asarray(x, dtype=float) / 24
        return sum(
            a * np.cos(k * wt) + b * np.sin(k * wt)
            for k, (a, b) in zip((1, 2), _DIURNAL, strict=True)
        )

    scale = float(np.ptp(curve(np.arange(0, 24, 0.1))))
    return 2 * amp * curve(hour) / scale


def _weekly(dow: np.ndarray) -> np.ndarray:
    out = np.zeros(dow.shape)
    out[dow == 5] = -0.2
    out[dow == 6] = -0.35
    return out


def _annual(doy: np.ndarray, amp: float = 0.3) -> np.ndarray:
    """Winter maximum (mid January)."""
    return amp * np.cos(2 * np.pi * (doy - 15) / 365.24)


@dataclass
class StationParams:
    start: str = "2018-01-01"
    end: str = "2020-12-31 23:00"
    n_stations: int = 8
    lockdown_size: float = -0.35
    lockdown_start: str = "2020-03-16"
    lockdown_end: str = "2020-05-16"
    n_spikes: int = 3
    spikes_every_year: bool = False
    gap_fraction: float = 0.05
    nonpositive_fraction: float = 0.001
    noise_sd: float = 0.25
    noise_phi: float = 0.6
    twin_noise_sd: float = 0.12
    stagnation_coef: float = 0.25


CLUSTERS = {"A": (48.85, 2.35), "B": (40.42, -3.70)}


def _bursty_gap_mask(
    rng: np.random.Generator, n: int, frac: float, mean_len: float = 24.0
) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if frac <= 0:
        return mask
    n_bursts = max(1, int(round(frac * n / mean_len)))
    for _ in range(n_bursts):
        s = int(rng.integers(0, n))
        length = int(rng.geometric(1.0 / mean_len))
        mask[s : s + length] = True
    return mask


def make_stations(
    seed: int = 0,
    anomalies: bool = True,
    faults: bool = True,
    **overrides: object,
) -> xr.Dataset:
    """Hourly UTC station data: obs `no2`, twin `model_no2`, `temperature`, `wind`, labels.

    `anomaly(time, station)`: 0 none, 1 lockdown-like drop, 2 wildfire-like spike.
    `anomalies=False` gives an anomaly-free null replicate (same structure).
    """
    p = StationParams(**overrides)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    time = pd.date_range(p.start, p.end, freq="h")
    n, s = len(time), p.n_stations
    half = (s + 1) // 2
    cluster = np.array(["A"] * half + ["B"] * (s - half))
    lat = np.array([CLUSTERS[c][0] for c in cluster]) + rng.normal(0, 0.4, s)
    lon = np.array([CLUSTERS[c][1] for c in cluster]) + rng.normal(0, 0.6, s)
    hour, dow, doy = time.hour.values, time.dayofweek.values, time.dayofyear.values

    def clustered(efold: float) -> np.ndarray:
        common = {c: ar1(rng, (n,), efold) for c in CLUSTERS}
        indiv = ar1(rng, (n, s), efold)
        shared = np.stack([common[c] for c in cluster], axis=1)
        return np.sqrt(0.8) * shared + np.sqrt(0.2) * indiv

    t_clim = (
        12.0
        - 8.0 * np.cos(2 * np.pi * (doy - 15) / 365.24)
        + 4.0 * np.cos(2 * np.pi * (hour - 15) / 24)
    )
    t_anom = 3.0 * clustered(72.0)
    temperature = t_clim[:, None] + t_anom
    log_wind = np.log(3.0) + 0.5 * clustered(48.0)
    wind = np.exp(log_wind)
    stagnation = clustered(72.0)

    a_s = np.log(rng.uniform(15, 40, s))
    diurnal = _diurnal(hour)[:, None]
    seasonal = (_weekly(dow) + _annual(doy))[:, None]
    weather = -0.5 * (log_wind - np.log(3.0)) + 0.02 * (temperature - 12.0)
    noise = ar1_phi(rng, (n, s), p.noise_phi, p.noise_sd)
    log_obs = a_s + diurnal + seasonal + weather + p.stagnation_coef * stagnation + noise

    coef_w = rng.uniform(0.9, 1.1, s)
    coef_b = rng.uniform(0.9, 1.1, s)
    twin_noise = ar1_phi(rng, (n, s), p.noise_phi, p.twin_noise_sd)
    log_twin = (
        a_s
        + 0.1
        + 0.8 * diurnal
        + seasonal
        + coef_w * weather
        + coef_b * p.stagnation_coef * stagnation
        + twin_noise
    )

    labels = np.zeros((n, s), dtype=np.int8)
    effect = np.zeros((n, s))
    events: list[dict[str, object]] = []
    if anomalies:
        t0, t1 = pd.Timestamp(p.lockdown_start), pd.Timestamp(p.lockdown_end)
        if t0 < time[-1]:
            hrs = (time - t0) / pd.Timedelta("1h")
            end_h = (t1 - t0) / pd.Timedelta("1h")
            ramp = np.clip(hrs / 72.0, 0, 1) * np.clip((end_h + 14 * 24 - hrs) / (14 * 24), 0, 1)
            ramp = np.where(hrs < 0, 0.0, ramp)
            in_a = cluster == "A"
            effect[:, in_a] += p.lockdown_size * ramp[:, None]
            on = (hrs >= 0) & (hrs < end_h)
            labels[np.ix_(on, in_a)] = ANOMALY_DROP
            for st in np.flatnonzero(in_a):
                events.append(
                    {"station": int(st), "kind": "drop", "start": str(t0), "end": str(t1)}
                )
        years = sorted(set(time.year)) if p.spikes_every_year else [time[-1].year]
        for yr in years:
            for _ in range(p.n_spikes):
                st = int(rng.integers(0, s))
                day = pd.Timestamp(f"{yr}-07-01") + pd.Timedelta(days=int(rng.integers(0, 85)))
                dur_h = int(rng.integers(48, 121))
                height = float(rng.uniform(1.0, 2.0))
                hrs = (time - day) / pd.Timedelta("1h")
                on = (hrs >= 0) & (hrs < dur_h)
                if not on.any():
                    continue
                bump = np.where(on, np.sin(np.pi * np.clip(hrs, 0, dur_h) / dur_h) ** 0.3, 0.0)
                effect[:, st] += height * bump
                labels[on, st] = ANOMALY_SPIKE
                events.append(
                    {
                        "station": st,
                        "kind": "spike",
                        "start": str(day),
                        "end": str(day + pd.Timedelta(hours=dur_h)),
                        "height": height,
                    }
                )
    obs = np.exp(log_obs + effect)
    model = np.exp(log_twin)

    n_gaps = n_nonpos = 0
    if faults:
        for j in range(s):
            gm = _bursty_gap_mask(rng, n, p.gap_fraction)
            obs[gm, j] = np.nan
            n_gaps += int(gm.sum())
        nonpos = rng.random((n, s)) < p.nonpositive_fraction
        nonpos &= np.isfinite(obs)
        obs[nonpos] = rng.choice([0.0, -1.0], size=int(nonpos.sum()))
        n_nonpos = int(nonpos.sum())

    station_ids = np.array([f"S{j:02d}" for j in range(s)])
    ds = xr.Dataset(
        {
            "no2": (
                ("time", "station"),
                obs.astype(np.float64),
                {
                    "units": UNITS,
                    "long_name": "observed NO2 concentration (synthetic)",
                    "standard_name": "mass_concentration_of_nitrogen_dioxide_in_air",
                },
            ),
            "model_no2": (
                ("time", "station"),
                model,
                {"units": UNITS, "long_name": "model twin NO2 (shares the weather, no anomalies)"},
            ),
            "temperature": (
                ("time", "station"),
                temperature,
                {"units": "degC", "standard_name": "air_temperature"},
            ),
            "wind": (("time", "station"), wind, {"units": "m s-1", "standard_name": "wind_speed"}),
            "anomaly": (
                ("time", "station"),
                labels,
                {
                    "long_name": "injected anomaly label",
                    "flag_values": np.array([0, 1, 2], dtype=np.int8),
                    "flag_meanings": "none lockdown_drop wildfire_spike",
                },
            ),
        },
        coords={
            "time": ("time", time.values, {"standard_name": "time", "axis": "T"}),
            "station": ("station", station_ids, {"cf_role": "timeseries_id"}),
            "lat": ("station", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("station", lon, {"units": "degrees_east", "standard_name": "longitude"}),
            "cluster": ("station", cluster),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "koopman_anomaly synthetic stations",
            "featureType": "timeSeries",
            "seed": seed,
            "anomalies": int(anomalies),
            "parameters": json.dumps(asdict(p)),
            "events": json.dumps(events),
            "n_gaps": n_gaps,
            "n_nonpositive": n_nonpos,
        },
    )
    return ds


def _grid_modes(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    m1 = np.exp(-(((la - 45) / 15) ** 2 + ((lo - 10) / 30) ** 2))
    m2 = np.cos(np.deg2rad(la)) * np.sin(np.deg2rad(lo) * 2)
    m3 = np.exp(-(((la + 10) / 20) ** 2 + ((lo + 60) / 40) ** 2))
    return np.stack([m1, m2, m3])


def make_grid(
    seed: int = 0,
    anomalies: bool = True,
    shape: tuple[int, int] = (32, 48),
    start: str = "2018-01-01",
    end: str = "2019-12-31 23:00",
    drop_size: float = -0.35,
    drop_start: str = "2019-10-01",
    drop_end: str = "2019-11-15",
) -> xr.Dataset:
    """A (time, lat, lon) field: three smooth spatial modes with diurnal/weekly/annual
    cycles, a shared weather field, AR noise, and (optionally) a regional drop."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(start, end, freq="h")
    n = len(time)
    lat = np.linspace(-60, 70, shape[0])
    lon = np.linspace(-170, 175, shape[1])
    modes = _grid_modes(lat, lon)
    hour, dow, doy = time.hour.values, time.dayofweek.values, time.dayofyear.values
    amps = np.stack(
        [
            _diurnal(hour) + _weekly(dow),
            _annual(doy) + 0.3 * ar1(rng, (n,), 72.0),
            0.5 * _diurnal((hour + 6) % 24) + 0.2 * ar1(rng, (n,), 48.0),
        ],
        axis=1,
    )
    base = np.log(20.0) + 0.5 * np.cos(np.deg2rad(lat))[:, None] * np.ones(shape[1])
    weather = 0.15 * ar1(rng, (n,), 72.0)[:, None, None] * modes[0]
    field = base + np.einsum("tk,kab->tab", amps, modes) + weather
    field = field + ar1_phi(rng, (n, *shape), 0.6, 0.15)
    label = np.zeros((n, *shape), dtype=np.int8)
    if anomalies:
        la, lo = np.meshgrid(lat, lon, indexing="ij")
        region = (la > 30) & (la < 60) & (lo > -10) & (lo < 40)
        on = (time >= pd.Timestamp(drop_start)) & (time < pd.Timestamp(drop_end))
        field[np.ix_(on, region.any(1), region.any(0))] += drop_size
        label[np.ix_(on, region.any(1), region.any(0))] = ANOMALY_DROP
    ds = xr.Dataset(
        {
            "no2": (
                ("time", "lat", "lon"),
                np.exp(field),
                {"units": UNITS, "long_name": "synthetic gridded NO2"},
            ),
            "anomaly": (
                ("time", "lat", "lon"),
                label,
                {
                    "flag_values": np.array([0, 1], dtype=np.int8),
                    "flag_meanings": "none regional_drop",
                },
            ),
        },
        coords={
            "time": ("time", time.values, {"standard_name": "time", "axis": "T"}),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "koopman_anomaly synthetic grid",
            "seed": seed,
            "anomalies": int(anomalies),
        },
    )
    return ds


def lazy_grid(
    n_time: int = 8760,
    shape: tuple[int, int] = (180, 360),
    chunks: tuple[int, int] = (90, 180),
    seed: int = 0,
    start: str = "2019-01-01",
    drop: tuple[str, str] | None = ("2019-10-15", "2019-11-30"),
    drop_size: float = -0.35,
    dtype: str = "float32",
) -> xr.Dataset:
    """A dask-backed (time, lat, lon) cube, generated chunk-wise on demand (never stored).

    Each chunk is a deterministic function of (seed, chunk index): same answer every compute.
    """
    import dask.array as da

    time = pd.date_range(start, periods=n_time, freq="h")
    lat = np.linspace(-89.5, 89.5, shape[0])
    lon = np.linspace(-179.5, 179.5, shape[1])
    hour, dow, doy = time.hour.values, time.dayofweek.values, time.dayofyear.values
    cyc = (_diurnal(hour) + _weekly(dow) + _annual(doy)).astype(dtype)
    drop_mask = np.zeros(n_time, dtype=dtype)
    if drop is not None:
        drop_mask[(time >= pd.Timestamp(drop[0])) & (time < pd.Timestamp(drop[1]))] = drop_size

    def block(block_id: tuple[int, int, int] | None = None) -> np.ndarray:
        assert block_id is not None
        _, bi, bj = block_id
        r = np.random.default_rng([seed, bi, bj])
        la = lat[bi * chunks[0] : (bi + 1) * chunks[0]]
        lo = lon[bj * chunks[1] : (bj + 1) * chunks[1]]
        npix = la.size * lo.size
        amp = (0.5 + 0.5 * np.cos(np.deg2rad(la)))[:, None] * np.ones(lo.size)
        base = np.log(5.0) + 2.0 * np.cos(np.deg2rad(la))[:, None] * np.ones(lo.size)
        noise = ar1_phi(r, (n_time, npix), 0.6, 0.2).astype(dtype)
        out = base.reshape(1, -1) + cyc[:, None] * amp.reshape(1, -1) + noise
        region = (
            (la[:, None] > 35) & (la[:, None] < 60) & (lo[None, :] > -10) & (lo[None, :] < 40)
        ).reshape(-1)
        if region.any():
            out[:, region] += drop_mask[:, None]
        return out.reshape(n_time, la.size, lo.size).astype(dtype)

    arr = da.map_blocks(
        block,
        chunks=((n_time,), _split(shape[0], chunks[0]), _split(shape[1], chunks[1])),
        dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype),
    )
    ds = xr.Dataset(
        {
            "log_no2": (
                ("time", "lat", "lon"),
                arr,
                {"units": "1", "long_name": "log of NO2 in ug m-3"},
            )
        },
        coords={
            "time": time.values,
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
        attrs={"seed": seed, "title": "lazy synthetic grid"},
    )
    return ds


def _split(n: int, c: int) -> tuple[int, ...]:
    out = [c] * (n // c)
    if n % c:
        out.append(n % c)
    return tuple(out)
