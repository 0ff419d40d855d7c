"""`KoopmanAnomalyDetector`: forecast -> standardised residuals -> (twin differencing) ->
trailing windows -> calibrated null -> multiple-testing decisions, for (time, station) data.

Periods: models are trained on `train`; nulls are fitted on `calib` (disjoint, after training);
decisions are made on `monitor`. A run directory holds `manifest.json` (config hash, per-station
status) and `models/<station>/`; every write is atomic, so an interrupted fit resumes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from . import __version__
from .combine import hotelling, ledoit_wolf_corr, stouffer, to_scores
from .decide import CORRECTIONS, adjust, flags_from, maxt_adjust
from .errors import ConfigError, InvalidDataError
from .forecast import load_forecaster, make_forecaster, parse_period_hours
from .io import add_cf_attrs, check_hourly, check_units, get_variable, validate, write_json_atomic
from .null import SIDES, HACNull, make_null
from .prep import align_reference, coverage, transform_values
from .residuals import fit_twin, standardised_residuals
from .sequential import SequentialDetector
from .windows import decision_index, select_stat, window_stats

STATUS_OK, STATUS_INSUFFICIENT, STATUS_FAILED = "ok", "insufficient_data", "failed"


def _timestamp(v: Any, name: str, p: Any) -> pd.Timestamp:
    try:
        t = pd.Timestamp(v)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{name} period {p!r}: {v!r} is not a date ({exc}); give dates like "
            "('2019-01-01', '2019-06-30') or '2019-01-01:2019-06-30'."
        ) from None
    if t is pd.NaT:
        raise ConfigError(f"{name} period {p!r} has an empty date; give both start and end.")
    if t.tzinfo is not None:
        raise ConfigError(
            f"{name} period {p!r} carries a timezone; give naive UTC dates like '2019-01-01'."
        )
    return t


def _period(p: tuple[str, str] | str | None, name: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    if p is None:
        return None
    if isinstance(p, str):
        p = parse_period(p)
    if not isinstance(p, tuple | list) or len(p) != 2:
        raise ConfigError(
            f"{name} period {p!r} must be a (start, end) pair or 'start:end', "
            "e.g. ('2019-01-01', '2019-06-30')."
        )
    a, b = _timestamp(p[0], name, p), _timestamp(p[1], name, p)
    if len(str(p[1])) <= 10:  # a date: include the whole day
        b = b + pd.Timedelta(hours=23, minutes=59)
    if b <= a:
        raise ConfigError(f"{name} period {p} ends before it starts.")
    return a, b


def parse_period(p: str) -> tuple[str, str]:
    """'2018-01-01:2019-06-30' -> ('2018-01-01', '2019-06-30')."""
    if p.count(":") != 1:
        raise ConfigError(f"period {p!r} must look like 2018-01-01:2019-06-30 (dates, one colon).")
    a, b = p.split(":")
    return a.strip(), b.strip()


def _duration(v: Any, name: str) -> pd.Timedelta:
    try:
        return pd.Timedelta(v)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{name}={v!r} is not a duration ({exc}); give one like '168h' or '-30min'."
        ) from None


def _whole_hours(v: Any, name: str) -> int:
    """A positive duration that is a whole number of hours (the detector counts hourly steps)."""
    d = _duration(v, name)
    hours = d / pd.Timedelta("1h")
    if hours < 1 or hours != int(hours):
        try:
            float(v)
            hint = " (a bare number is read as nanoseconds)"
        except (TypeError, ValueError):
            hint = ""
        raise ConfigError(
            f"{name}={v!r} is {d}{hint}; it must be a positive whole number of hours such as "
            "'24h' or '168h' (windows count hourly steps)."
        )
    return int(hours)


@dataclass
class DetectorConfig:
    var: str = "no2"
    transform: str = "log"
    floor: str = "mask"
    forecaster: str = "auto"
    forecaster_options: dict[str, Any] = field(default_factory=dict)
    periods: tuple[str, ...] = ("24h", "168h", "8766h")
    covariates: tuple[str, ...] = ()
    reference: str | None = None
    beta: str | float = "ols"
    ref_offset: str = "0min"
    window: str = "168h"
    stat: str = "mean"
    side: str = "lower"
    alpha: float = 0.01
    null: str = "hac"
    correction: str = "bh"
    stride: str | None = None
    method: str = "window"
    combine: str | None = None
    train: tuple[str, str] | None = None
    calib: tuple[str, str] | None = None
    min_station_coverage: float = 0.5
    n_boot: int = 2000
    seed: int = 0

    def validate(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float | np.number):
            raise ConfigError(f"alpha must be a number in (0, 0.5], got {self.alpha!r}.")
        if not 0 < self.alpha <= 0.5:
            raise ConfigError(f"alpha must lie in (0, 0.5], got {self.alpha}.")
        if self.side not in SIDES:
            raise ConfigError(f"side must be one of {SIDES}, got {self.side!r}.")
        if self.correction not in CORRECTIONS:
            raise ConfigError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}.")
        if self.method not in ("window", "cusum", "glr"):
            raise ConfigError(f"method must be window, cusum or glr, got {self.method!r}.")
        if self.combine not in (None, "stouffer", "hotelling"):
            raise ConfigError(
                f"combine must be None, 'stouffer' or 'hotelling', got {self.combine!r}."
            )
        if self.stat not in ("mean", "msq"):
            raise ConfigError(f"stat must be 'mean' or 'msq', got {self.stat!r}.")
        if self.transform not in ("log", "none"):
            raise ConfigError(f"transform must be 'log' or 'none', got {self.transform!r}.")
        if self.floor not in ("mask", "half_min"):
            raise ConfigError(f"floor must be 'mask' or 'half_min', got {self.floor!r}.")
        if self.forecaster not in ("auto", "dpk", "harmonic"):
            raise ConfigError(
                f"forecaster must be 'auto', 'dpk' or 'harmonic', got {self.forecaster!r}."
            )
        if not isinstance(self.forecaster_options, dict):
            raise ConfigError(
                f"forecaster_options must be a dict, got {type(self.forecaster_options).__name__}."
            )
        for name in ("covariates", "periods"):
            v = getattr(self, name)
            if isinstance(v, str):
                raise ConfigError(
                    f"{name} must be a tuple, got the string {v!r}; write {name}=({v!r},) for one."
                )
            if not isinstance(v, tuple | list):
                raise ConfigError(f"{name} must be a tuple, got {v!r}.")
        if not all(isinstance(x, str) for x in self.covariates):
            raise ConfigError(f"covariates must be variable names, got {self.covariates!r}.")
        if not self.periods:
            raise ConfigError("periods is empty; give at least one, e.g. ('24h', '168h').")
        for per in self.periods:
            parse_period_hours(per)  # a bad or non-positive period raises ConfigError
        if self.reference is not None and not isinstance(self.reference, str):
            raise ConfigError(f"reference must be a variable name, got {self.reference!r}.")
        if self.beta != "ols" and (
            isinstance(self.beta, bool)
            or not isinstance(self.beta, int | float)
            or not np.isfinite(self.beta)
        ):
            raise ConfigError(f"beta must be 'ols' or a finite number, got {self.beta!r}.")
        _duration(self.ref_offset, "ref_offset")
        _whole_hours(self.window, "window")
        if self.stride is not None:
            _whole_hours(self.stride, "stride")
        if not 0 <= self.min_station_coverage < 1:
            raise ConfigError(
                f"min_station_coverage must lie in [0, 1), got {self.min_station_coverage}."
            )
        if isinstance(self.n_boot, bool) or not isinstance(self.n_boot, int) or self.n_boot < 1:
            raise ConfigError(f"n_boot must be a positive integer, got {self.n_boot!r}.")
        if self.train is None or self.calib is None:
            raise ConfigError("give both train=(start, end) and calib=(start, end) periods.")
        tr, ca = _period(self.train, "train"), _period(self.calib, "calib")
        assert tr and ca
        if ca[0] <= tr[1] and tr[0] <= ca[1]:
            raise ConfigError(
                f"calibration period {self.calib} overlaps training {self.train}; make them disjoint."
            )
        if ca[0] < tr[0]:
            raise ConfigError(
                f"calibration period {self.calib} starts before training {self.train}; the null "
                "must come from forecasts made after training. Put calib after train."
            )

    def hash(self) -> str:
        keys = (
            "var",
            "transform",
            "floor",
            "forecaster",
            "forecaster_options",
            "periods",
            "covariates",
            "reference",
            "ref_offset",
            "train",
            "seed",
        )
        d = {k: getattr(self, k) for k in keys}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def k(self) -> int:
        return _whole_hours(self.window, "window")

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


def _mask(times: pd.DatetimeIndex, period: tuple[pd.Timestamp, pd.Timestamp]) -> np.ndarray:
    return np.asarray((times >= period[0]) & (times <= period[1]))


def _read_manifest(rd: Path) -> dict[str, Any]:
    mpath = rd / "manifest.json"
    try:
        m = json.loads(mpath.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{mpath} is unreadable ({exc}); rerun `fit` with force=True (--force) to rebuild the "
            "run, or use a new run directory."
        ) from None
    if not isinstance(m, dict) or not {"config", "stations"} <= set(m):
        raise ConfigError(
            f"{mpath} is not a koopman_anomaly manifest (needs 'config' and 'stations'); rerun "
            "`fit` with force=True (--force) or use a new run directory."
        )
    return m


class KoopmanAnomalyDetector:
    """Calibrated window / sequential anomaly detection on (time, station) data."""

    def __init__(self, config: DetectorConfig | None = None, **kw: Any):
        cfg = config or DetectorConfig()
        names = {f.name for f in fields(DetectorConfig)}
        bad = set(kw) - names
        if bad:
            raise ConfigError(f"unknown option(s) {sorted(bad)}; valid: {sorted(names)}.")
        for k, v in kw.items():
            if k in ("train", "calib") and isinstance(v, str):
                v = parse_period(v)
            setattr(cfg, k, v)
        self.config = cfg
        self.models_: dict[str, Any] = {}
        self.ref_models_: dict[str, Any] = {}
        self.status_: dict[str, str] = {}

    # ------------------------------------------------------------------ data
    def _arrays(self, ds: xr.Dataset) -> dict[str, Any]:
        c = self.config
        ds = validate(ds, c.var, c.transform)
        da = get_variable(ds, c.var)
        if set(da.dims) != {"time", "station"}:
            raise InvalidDataError(
                f"KoopmanAnomalyDetector handles (time, station) data; {c.var!r} has dims {da.dims}. "
                "Use koopman_anomaly.grid for (time, lat, lon)."
            )
        times = pd.DatetimeIndex(ds["time"].values)
        check_hourly(times)
        obs_raw = da.transpose("time", "station").values
        tr = transform_values(obs_raw, c.transform, c.floor)
        out: dict[str, Any] = {
            "ds": ds,
            "times": times,
            "stations": [str(s) for s in ds["station"].values],
            "obs": tr.values,
            "n_nonpositive": tr.n_nonpositive,
            "units": da.attrs.get("units", ""),
        }
        if c.reference:
            rda = get_variable(ds, c.reference)
            if set(rda.dims) != set(da.dims):
                raise InvalidDataError(
                    f"reference {c.reference!r} dims {rda.dims} differ from {c.var!r} {da.dims}."
                )
            check_units(rda, c.transform, expected=str(da.attrs.get("units", "")) or None)
            ref = transform_values(
                rda.transpose("time", "station").values, c.transform, c.floor
            ).values
            out["ref"] = align_reference(ref, times, c.ref_offset)
        covs = []
        for name in c.covariates:
            cv = get_variable(ds, name)
            if set(cv.dims) not in ({"time"}, {"time", "station"}):
                raise InvalidDataError(
                    f"covariate {name!r} has dims {cv.dims}; a covariate must be (time,) (shared by "
                    "all stations) or (time, station). Select or reduce the other dims first."
                )
            if cv.dtype.kind not in "biuf":
                raise InvalidDataError(
                    f"covariate {name!r} has dtype {cv.dtype}, not numeric; convert it to float."
                )
            arr = cv.transpose("time", ...).values
            if arr.ndim == 1:
                arr = np.repeat(arr[:, None], len(out["stations"]), axis=1)
            covs.append(arr)
        out["cov"] = np.stack(covs, axis=-1) if covs else None  # (time, station, C)
        return out

    def _cov(
        self, arrs: dict[str, Any], j: int, sel: np.ndarray | slice = slice(None)
    ) -> np.ndarray | None:
        cov = arrs["cov"]
        return None if cov is None else cov[sel, j, :]

    # ------------------------------------------------------------------- fit
    def fit(
        self,
        ds: xr.Dataset,
        run_dir: str | Path | None = None,
        resume: bool = True,
        force: bool = False,
        progress: bool = True,
    ) -> KoopmanAnomalyDetector:
        c = self.config
        c.validate()
        arrs = self._arrays(ds)
        times = arrs["times"]
        tr = _period(c.train, "train")
        assert tr is not None
        train = _mask(times, tr)
        if not train.any():
            raise ConfigError(
                f"no data inside the training period {c.train}; data span {times[0]}..{times[-1]}."
            )
        if not arrs["stations"]:
            raise InvalidDataError(f"{c.var!r} has no stations; nothing to fit.")
        for i, name in enumerate(c.covariates):
            if not np.isfinite(arrs["cov"][train][..., i]).any():
                raise InvalidDataError(
                    f"covariate {name!r} has no finite value in the training period {c.train}; "
                    "fill it or drop it from covariates."
                )
        opts = dict(c.forecaster_options)
        opts.setdefault("periods", tuple(c.periods))
        try:
            make_forecaster(c.forecaster, **opts)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"forecaster={c.forecaster!r} rejects forecaster_options "
                f"{sorted(c.forecaster_options)} ({exc}); pass only that forecaster's options."
            ) from None
        manifest = self._open_manifest(run_dir, resume, force)
        cov_frac = coverage(arrs["obs"][train], times[train])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self._fit_loop(arrs, times, train, cov_frac, manifest, run_dir, progress)
        for msg in dict.fromkeys(str(w.message) for w in caught):
            warnings.warn(msg, stacklevel=2)
        if not any(v == STATUS_OK for v in self.status_.values()):
            warnings.warn(
                f"no station could be fitted (status {dict(self.status_)}); check that {c.var!r} has "
                f"valid values in the training period {c.train} (coverage must exceed "
                f"min_station_coverage={c.min_station_coverage}).",
                stacklevel=2,
            )
        return self

    def _fit_loop(
        self,
        arrs: dict[str, Any],
        times: pd.DatetimeIndex,
        train: np.ndarray,
        cov_frac: np.ndarray,
        manifest: dict[str, Any],
        run_dir: str | Path | None,
        progress: bool,
    ) -> None:
        c = self.config
        for j, st in enumerate(tqdm(arrs["stations"], desc="fit stations", disable=not progress)):
            if manifest and manifest["stations"].get(st) == STATUS_OK and run_dir is not None:
                try:
                    self.models_[st] = load_forecaster(Path(run_dir) / "models" / st / "obs")
                    if c.reference:
                        self.ref_models_[st] = load_forecaster(
                            Path(run_dir) / "models" / st / "ref"
                        )
                    self.status_[st] = STATUS_OK
                    continue
                except (OSError, KeyError, ValueError):
                    pass  # refit below
            if cov_frac[j] <= c.min_station_coverage:
                self.status_[st] = STATUS_INSUFFICIENT
            else:
                try:
                    self.models_[st] = self._fit_one(
                        arrs["obs"][:, j], times, train, self._cov(arrs, j)
                    )
                    if c.reference:
                        self.ref_models_[st] = self._fit_one(
                            arrs["ref"][:, j], times, train, self._cov(arrs, j)
                        )
                    self.status_[st] = STATUS_OK
                except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
                    warnings.warn(f"station {st}: fit failed ({exc}); marked failed.", stacklevel=2)
                    self.status_[st] = STATUS_FAILED
            if run_dir is not None:
                self._save_station(Path(run_dir), st)
                manifest["stations"][st] = self.status_[st]
                write_json_atomic(manifest, Path(run_dir) / "manifest.json")

    def _fit_one(
        self, y: np.ndarray, times: pd.DatetimeIndex, train: np.ndarray, cov: np.ndarray | None
    ) -> Any:
        c = self.config
        opts = dict(c.forecaster_options)
        opts.setdefault("periods", tuple(c.periods))
        fc = make_forecaster(c.forecaster, **opts)
        ok = train & np.isfinite(y)
        if ok.sum() < 200:
            raise ValueError(f"only {int(ok.sum())} valid training points")
        tsel = np.flatnonzero(train)
        fc.fit(y[tsel], times[tsel], None if cov is None else cov[tsel])
        return fc

    def _open_manifest(
        self, run_dir: str | Path | None, resume: bool, force: bool
    ) -> dict[str, Any]:
        if run_dir is None:
            return {}
        rd = Path(run_dir)
        mpath = rd / "manifest.json"
        h = self.config.hash()
        if mpath.exists():
            try:
                m = _read_manifest(rd)
            except ConfigError:
                if not force:
                    raise
                m = {}
            if m.get("config_hash") != h and not force:
                raise ConfigError(
                    f"{rd} holds a run with a different configuration (hash {m.get('config_hash')} != {h}); "
                    "use a new run directory or force=True (--force) to overwrite it."
                )
            if m.get("config_hash") == h and resume:
                return m
            if force and (rd / "models").exists():
                shutil.rmtree(rd / "models")
        m = {
            "config_hash": h,
            "config": json.loads(self.config.to_json()),
            "version": __version__,
            "stations": {},
        }
        write_json_atomic(m, mpath)
        return m

    def _save_station(self, rd: Path, st: str) -> None:
        if self.status_.get(st) != STATUS_OK:
            return
        self.models_[st].save(rd / "models" / st / "obs")
        if self.config.reference:
            self.ref_models_[st].save(rd / "models" / st / "ref")

    def save(self, run_dir: str | Path) -> None:
        rd = Path(run_dir)
        for st in self.status_:
            self._save_station(rd, st)
        m = {
            "config_hash": self.config.hash(),
            "config": json.loads(self.config.to_json()),
            "version": __version__,
            "stations": dict(self.status_),
        }
        write_json_atomic(m, rd / "manifest.json")

    @classmethod
    def load(cls, run_dir: str | Path) -> KoopmanAnomalyDetector:
        rd = Path(run_dir)
        mpath = rd / "manifest.json"
        if not mpath.exists():
            raise ConfigError(f"{rd} has no manifest.json; run `fit` first.")
        m = _read_manifest(rd)
        try:
            cfg = DetectorConfig(
                **{k: (tuple(v) if isinstance(v, list) else v) for k, v in m["config"].items()}
            )
        except (TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{mpath} holds an unusable config ({exc}); refit with force=True (--force)."
            ) from None
        det = cls(cfg)
        for st, status in m["stations"].items():
            det.status_[st] = status
            if status == STATUS_OK:
                for kind in ("obs", "ref") if cfg.reference else ("obs",):
                    path = rd / "models" / st / kind
                    try:
                        model = load_forecaster(path)
                    except (OSError, KeyError, ValueError) as exc:
                        raise ConfigError(
                            f"station {st}: model {path} is missing or unreadable ({exc}); rerun "
                            "`fit` on this run directory to refit it (finished stations are kept)."
                        ) from None
                    (det.models_ if kind == "obs" else det.ref_models_)[st] = model
        return det

    # ---------------------------------------------------------------- detect
    def residuals(self, ds: xr.Dataset, progress: bool = False) -> dict[str, Any]:
        """mu, sigma, z (and z_ref) for every time and station of `ds`."""
        arrs = self._arrays(ds)
        times, stations = arrs["times"], arrs["stations"]
        T, S = len(times), len(stations)
        mu, sigma, z = (np.full((T, S), np.nan) for _ in range(3))
        z_ref = np.full((T, S), np.nan)
        for j, st in enumerate(tqdm(stations, desc="forecast", disable=not progress)):
            if self.status_.get(st) != STATUS_OK:
                continue
            cov = self._cov(arrs, j)
            if cov is not None and not np.isfinite(cov).all():
                bad = np.flatnonzero(~np.isfinite(cov).all(axis=1))[0]
                raise InvalidDataError(
                    f"covariate missing at {times[bad]} (station {st}); covariates must cover every "
                    "detection time. Fill or drop those times."
                )
            pred = self.models_[st].predict(times, cov)
            mu[:, j], sigma[:, j] = pred.mean(), pred.std()
            z[:, j] = standardised_residuals(arrs["obs"][:, j], pred)
            if self.config.reference:
                pr = self.ref_models_[st].predict(times, cov)
                z_ref[:, j] = standardised_residuals(arrs["ref"][:, j], pr)
        return {**arrs, "mu": mu, "sigma": sigma, "z": z, "z_ref": z_ref}

    def detect(
        self,
        ds: xr.Dataset,
        monitor: tuple[str, str] | str | None = None,
        progress: bool = False,
        residuals: dict[str, Any] | None = None,
    ) -> xr.Dataset:
        c = self.config
        c.validate()
        if not self.status_:
            raise ConfigError("the detector is not fitted; call fit() or load(run_dir) first.")
        r = residuals if residuals is not None else self.residuals(ds, progress=progress)
        times, stations = r["times"], r["stations"]
        T, S = len(times), len(stations)
        k = c.k
        tr, ca = _period(c.train, "train"), _period(c.calib, "calib")
        assert tr and ca
        calib = _mask(times, ca)
        if isinstance(monitor, str):
            monitor = parse_period(monitor)
        mon_p = (
            _period(monitor, "monitor")
            if monitor is not None
            else (ca[1] + pd.Timedelta("1ns"), times[-1])
        )
        assert mon_p is not None
        if mon_p[0] <= ca[1] and ca[0] <= mon_p[1]:
            raise ConfigError(
                f"monitor period {monitor} overlaps calibration {c.calib}; make them disjoint."
            )
        if mon_p[0] <= tr[1] and tr[0] <= mon_p[1]:
            raise ConfigError(
                f"monitor period {monitor or (str(mon_p[0]), str(mon_p[1]))} overlaps training "
                f"{c.train}: in-sample residuals are too narrow to test. Monitor after training."
            )
        if calib.sum() < k:
            raise ConfigError(
                f"window k={k} h is longer than the calibration span ({int(calib.sum())} steps)."
            )
        mon = _mask(times, mon_p)
        if not mon.any():
            raise ConfigError(
                f"no data inside the monitoring period {monitor or (str(mon_p[0]), str(mon_p[1]))}; "
                f"data span {times[0]}..{times[-1]}. Pick a monitor period inside the data."
            )
        if int(mon.sum()) < k:
            raise ConfigError(
                f"the monitoring period holds {int(mon.sum())} steps, fewer than the window "
                f"k={k} h, so no decision can be made; lengthen it or shorten the window."
            )
        unfitted = [s for s in stations if s not in self.status_]
        if len(unfitted) == S:
            raise InvalidDataError(
                f"none of the stations in the data {stations[:5]}... were fitted (fitted: "
                f"{sorted(self.status_)[:5]}...); detect on the stations you fitted."
                if S > 5
                else f"none of the stations in the data {stations} were fitted (fitted: "
                f"{sorted(self.status_)}); detect on the stations you fitted."
            )
        if not any(self.status_.get(s) == STATUS_OK for s in stations):
            raise InvalidDataError(
                f"no station has a fitted model (status {dict(self.status_)}); nothing to "
                "detect. Refit with more valid training data."
            )
        if unfitted:
            warnings.warn(
                f"stations {unfitted} were not in the fitted run; they get status 'failed' and "
                "are never flagged. Refit to include them.",
                stacklevel=2,
            )
        z, z_ref = r["z"], r["z_ref"]
        rho = np.full(S, np.nan)
        beta = np.full(S, np.nan)
        zeta = np.full((T, S), np.nan)
        if c.reference:
            for j in range(S):
                if stations[j] in self.models_:
                    with warnings.catch_warnings(record=True):
                        try:
                            td = fit_twin(z[calib, j], z_ref[calib, j], c.beta)
                        except ValueError as exc:
                            warnings.warn(
                                f"station {stations[j]}: twin differencing skipped ({exc}); its "
                                "zeta is NaN. Check obs and reference in the calibration period.",
                                stacklevel=2,
                            )
                            continue
                    zeta[:, j] = td.apply(z[:, j], z_ref[:, j])
                    rho[j], beta[j] = td.rho, td.beta
            e = zeta
        else:
            e = z
        ws = window_stats(e, k)
        stat_series = select_stat(ws, c.stat)
        ok_cols = np.array([self.status_.get(s) == STATUS_OK for s in stations])
        # null on calibration (or training, for the in-sample reproduction)
        null = make_null(c.null, seed=c.seed, n_rep=c.n_boot)
        fit_rows = _mask(times, tr) if c.null == "insample" else calib
        e_fit = e[fit_rows][:, ok_cols] if ok_cols.any() else e[fit_rows]
        n_valid = np.isfinite(e_fit).sum(0)
        if (n_valid < k).any():
            few = [
                str(s) for s, n in zip(np.asarray(stations)[ok_cols], n_valid, strict=True) if n < k
            ]
            warnings.warn(
                f"stations {few} have fewer than k={k} valid residuals in the "
                f"{'training' if c.null == 'insample' else 'calibration'} period; their null is "
                "undefined or unreliable (NaN p-values, never flagged, when there are none). "
                "Lengthen the calibration period or check the gaps there.",
                stacklevel=2,
            )
        null.fit(e_fit, k, c.stat)
        null.check_alpha(c.alpha)
        stride = k if c.stride is None else int(pd.Timedelta(c.stride) / pd.Timedelta("1h"))
        mon_idx = np.flatnonzero(mon)
        dec = (
            decision_index(T, int(mon_idx[0]), int(mon_idx[-1]) + 1, k, stride)
            if mon_idx.size
            else np.zeros(0, int)
        )
        stat_d = stat_series[dec][:, ok_cols]
        if isinstance(null, HACNull):
            p_ok = null.pvalue(stat_d, c.side, count=ws.count[dec][:, ok_cols])
            sz = null.standardise(stat_d, ws.count[dec][:, ok_cols])
        else:
            p_ok = null.pvalue(stat_d, c.side)
            sz = stat_d - np.nanmedian(stat_d)
        p = np.full((dec.size, S), np.nan)
        p[:, ok_cols] = p_ok
        stat_z = np.full((dec.size, S), np.nan)
        stat_z[:, ok_cols] = sz
        if c.correction == "maxt":
            pv = null.pvalue
            q_ok, _ = maxt_adjust(
                p_ok,
                e_fit,
                k,
                c.stat,
                c.side,
                pv,
                dec.size,
                stride,
                n_rep=200,
                mean_block=48.0,
                seed=c.seed,
            )
            q = np.full_like(p, np.nan)
            q[:, ok_cols] = q_ok
        else:
            q = adjust(p, c.correction)
        flag_d = flags_from(q, stat_z, c.alpha, c.side)
        cus = np.full((T, S), np.nan)
        if c.method in ("cusum", "glr"):
            sq = SequentialDetector(
                method=c.method,
                side=c.side if c.side != "both" else "lower",
                alpha=c.alpha,
                window=2 * k,
                seed=c.seed,
            )
            sq.fit(e[calib][:, ok_cols])
            e_mon = e[mon][:, ok_cols]
            path, alarm = sq.run(e_mon)
            cus_m = np.full((mon.sum(), S), np.nan)
            cus_m[:, ok_cols] = path
            cus[mon] = cus_m
            flag_full = np.zeros((T, S), dtype=np.int8)
            al = np.zeros((mon.sum(), S), dtype=bool)
            al[:, ok_cols] = alarm
            sign = -1 if sq.side == "lower" else 1
            fm = np.zeros((mon.sum(), S), dtype=np.int8)
            fm[al] = sign
            flag_full[mon] = fm
        else:
            flag_full = np.zeros((T, S), dtype=np.int8)
            flag_full[dec] = flag_d
        stat_full = np.full((T, S), np.nan)
        p_full = np.full((T, S), np.nan)
        q_full = np.full((T, S), np.nan)
        stat_full[dec] = stat_series[dec]
        p_full[dec] = p
        q_full[dec] = q
        # null summaries
        null_mean = np.full(S, np.nan)
        null_sd = np.full(S, np.nan)
        n_eff = np.full(S, np.nan)
        if isinstance(null, HACNull):
            null_mean[ok_cols] = null.center_
            null_sd[ok_cols] = null.sd()
        else:
            null_mean[ok_cols] = [np.median(s) for s in null.sorted_]
            null_sd[ok_cols] = [np.std(s) for s in null.sorted_]
        n_eff[ok_cols] = null.n_eff
        status = np.array([self.status_.get(s, STATUS_FAILED) for s in stations])
        dims = ("time", "station")
        units_attr = f"log({r['units']})" if c.transform == "log" else r["units"]
        out = xr.Dataset(
            {
                "obs": (dims, r["obs"], {"units": units_attr}),
                "mu": (dims, r["mu"], {"units": units_attr}),
                "sigma": (dims, r["sigma"], {"units": units_attr}),
                "z": (dims, z),
                "window_mean": (dims, ws.mean),
                "window_msq": (dims, ws.msq),
                "coverage": (dims, ws.coverage),
                "stat": (dims, stat_full),
                "p_value": (dims, p_full),
                "q_value": (dims, q_full),
                "flag": (dims, flag_full),
                "cusum": (dims, cus),
                "null_mean": ("station", null_mean),
                "null_sd": ("station", null_sd),
                "n_eff": ("station", n_eff),
                "status": ("station", status.astype(str)),
                "n_nonpositive": ("station", np.asarray(r["n_nonpositive"], dtype=np.int64)),
                "in_monitor": ("time", mon.astype(np.int8)),
                "in_calib": ("time", calib.astype(np.int8)),
            },
            coords={"time": times.values, "station": np.asarray(stations)},
        )
        if c.reference:
            out["z_ref"] = (dims, z_ref)
            out["zeta"] = (dims, zeta)
            out["rho_ref"] = ("station", rho)
            out["beta_ref"] = ("station", beta)
        for cname in ("lat", "lon", "cluster"):
            if cname in r["ds"].coords:
                out = out.assign_coords({cname: ("station", r["ds"][cname].values)})
        if c.combine and dec.size and ok_cols.sum() > 1:
            out = self._combine(out, e, calib, k, null, c, dec, p, ok_cols, times)
        out.attrs.update(
            {
                "config": c.to_json(),
                "alpha": c.alpha,
                "window_hours": k,
                "null": c.null,
                "correction": c.correction,
                "side": c.side,
                "method": c.method,
                "koopman_anomaly_version": __version__,
                "variable": c.var,
                "forecaster": type(next(iter(self.models_.values()))).__name__
                if self.models_
                else "none",
                "title": "koopman_anomaly detections",
            }
        )
        return add_cf_attrs(out)

    def _combine(
        self,
        out: xr.Dataset,
        e: np.ndarray,
        calib: np.ndarray,
        k: int,
        null: Any,
        c: DetectorConfig,
        dec: np.ndarray,
        p: np.ndarray,
        ok: np.ndarray,
        times: pd.DatetimeIndex,
    ) -> xr.Dataset:
        ec = e[calib][:, ok]
        s_cal = select_stat(window_stats(ec, k), c.stat)[k - 1 :: k]
        p_cal = (
            null.pvalue(s_cal, "lower")
            if not isinstance(null, HACNull)
            else null.pvalue(s_cal, "lower")
        )
        R = ledoit_wolf_corr(to_scores(p_cal))
        side = "lower" if c.side != "upper" else "upper"
        p_use = p[:, ok] if side == "lower" else 1 - p[:, ok]
        S = to_scores(p_use)
        if c.combine == "stouffer":
            Zc, pc = stouffer(S, R)
        else:
            Zc, pc = hotelling(S, R)
        cz = np.full(len(times), np.nan)
        cp = np.full(len(times), np.nan)
        cz[dec], cp[dec] = Zc, pc
        cf = np.zeros(len(times), dtype=np.int8)
        pad = adjust(pc, "bh" if c.correction not in ("holm", "bonferroni", "maxt") else "holm")
        cf[dec] = np.where(pad <= c.alpha, -1 if side == "lower" else 1, 0)
        out["combined_z"] = ("time", cz, {"long_name": f"combined statistic ({c.combine})"})
        out["combined_p"] = ("time", cp, {"long_name": "combined p-value"})
        out["combined_flag"] = ("time", cf, {"long_name": "combined flag"})
        return out
