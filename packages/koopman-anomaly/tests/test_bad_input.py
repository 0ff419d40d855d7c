"""Bad input gets a clear AnomalyError (names the problem and the fix), never a deep traceback
or silently wrong output."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from koopman_anomaly import KoopmanAnomalyDetector, grid, io, synth
from koopman_anomaly.errors import AnomalyError, ConfigError, InvalidDataError
from koopman_anomaly.forecast import make_forecaster
from koopman_anomaly.null import HACNull
from koopman_anomaly.windows import window_stats


@pytest.fixture(scope="module")
def fitted(small_stations, make_det):
    return make_det().fit(small_stations, progress=False)


# --------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(alpha="0.05"), "alpha must be a number"),
        (dict(window="0h"), "positive whole number of hours"),
        (dict(window="30min"), "positive whole number of hours"),
        (dict(window="abc"), "window='abc' is not a duration"),
        (dict(window=168), "bare number is read as nanoseconds"),
        (dict(stride="0h"), "stride='0h'"),
        (dict(beta="foo"), "beta must be 'ols' or a finite number"),
        (dict(ref_offset="abc"), "ref_offset='abc' is not a duration"),
        (dict(periods=("abc",)), "period='abc' is not a duration"),
        (dict(periods=("0h",)), "positive duration"),
        (dict(periods="24h"), "write periods=\\('24h',\\)"),
        (dict(covariates="temperature"), "write covariates=\\('temperature',\\)"),
        (dict(min_station_coverage=2.0), "min_station_coverage"),
        (dict(n_boot=0), "n_boot must be a positive integer"),
        (dict(forecaster="prophet"), "forecaster must be 'auto', 'dpk' or 'harmonic'"),
        (dict(forecaster_options={"epochs": 3}), "not accepted by the harmonic forecaster"),
        (dict(train=("foo", "bar")), "'foo' is not a date"),
        (dict(train=("2019-01-01", "2019-05-01", "2019-09-30")), "must be a \\(start, end\\)"),
        (
            dict(train=("2019-07-01", "2019-12-31"), calib=("2019-01-01", "2019-06-30")),
            "starts before training",
        ),
    ],
)
def test_bad_config_is_refused_at_fit(small_stations, kw, match, make_det):
    with pytest.raises(ConfigError, match=match):
        make_det(**kw).fit(small_stations, progress=False)


# -------------------------------------------------------------------------------- data
def test_empty_data_is_refused(small_stations, make_det):
    with pytest.raises(InvalidDataError, match=r"empty along \['time'\]"):
        make_det().fit(small_stations.isel(time=slice(0, 0)), progress=False)
    with pytest.raises(InvalidDataError, match=r"empty along \['station'\]"):
        make_det().fit(small_stations.isel(station=slice(0, 0)), progress=False)


def test_non_hourly_or_incomplete_time_axis(small_stations, make_det):
    with pytest.raises(InvalidDataError, match="time step is 0 days 02:00:00, not 1 h"):
        make_det().fit(small_stations.isel(time=slice(None, None, 2)), progress=False)
    keep = np.ones(small_stations.sizes["time"], bool)
    keep[100:103] = False  # three missing hourly rows
    with pytest.raises(InvalidDataError, match=r"resample\(time='1h'\).asfreq\(\)"):
        make_det().fit(small_stations.isel(time=keep), progress=False)


@pytest.mark.parametrize(
    ("dims", "values", "match"),
    [
        (("time", "x"), lambda T: np.ones((T, 3)), "must be \\(time,\\)"),
        (("station",), lambda T: np.arange(4.0), "must be \\(time,\\)"),
        (("time",), lambda T: np.array(["a"] * T), "not numeric"),
    ],
)
def test_bad_covariate(small_stations, dims, values, match, make_det):
    ds = small_stations.copy()
    ds["c"] = (dims, values(ds.sizes["time"]))
    with pytest.raises(InvalidDataError, match=match):
        make_det(covariates=("c",)).fit(ds, progress=False)


def test_all_nan_covariate_in_training(small_stations, make_det):
    ds = small_stations.copy(deep=True)
    ds["temperature"][:] = np.nan
    with pytest.raises(InvalidDataError, match="'temperature' has no finite value"):
        make_det().fit(ds, progress=False)


def test_all_nan_variable_warns_at_fit_and_errors_at_detect(
    small_stations, small_periods, make_det
):
    ds = small_stations.copy(deep=True)
    ds["no2"][:] = np.nan
    with pytest.warns(UserWarning, match="no station could be fitted"):
        det = make_det().fit(ds, progress=False)
    with pytest.raises(InvalidDataError, match="no station has a fitted model"):
        det.detect(ds, monitor=small_periods["monitor"])


def test_detect_on_other_stations(fitted, small_stations, small_periods):
    ds = small_stations.assign_coords(station=["X1", "X2", "X3", "X4"])
    with pytest.raises(InvalidDataError, match="none of the stations in the data"):
        fitted.detect(ds, monitor=small_periods["monitor"])
    ds = small_stations.assign_coords(station=["S00", "S01", "S02", "X3"])
    with pytest.warns(UserWarning, match=r"stations \['X3'\] were not in the fitted run"):
        out = fitted.detect(ds, monitor=small_periods["monitor"])
    assert out.status.values[-1] == "failed"


def test_station_without_calibration_data_warns(small_stations, small_periods, make_det):
    ds = small_stations.copy(deep=True)
    t = pd.DatetimeIndex(ds.time.values)
    cal = (t >= "2019-10-01") & (t < "2020-01-01")
    ds["no2"].values[cal, 1] = np.nan
    det = make_det().fit(ds, progress=False)
    with pytest.warns(UserWarning, match=r"stations \['S01'\] have fewer than k=168 valid"):
        det.detect(ds, monitor=small_periods["monitor"])


# ----------------------------------------------------------------------------- monitor
@pytest.mark.parametrize(
    ("monitor", "err", "match"),
    [
        (("2022-01-01", "2022-06-30"), ConfigError, "no data inside the monitoring period"),
        (("2020-01-01", "2020-01-03"), ConfigError, "fewer than the window"),
        (("2019-03-01", "2019-04-30"), ConfigError, "overlaps training"),
        (("foo", "bar"), ConfigError, "'foo' is not a date"),
    ],
)
def test_bad_monitor(fitted, small_stations, monitor, err, match):
    with pytest.raises(err, match=match):
        fitted.detect(small_stations, monitor=monitor)


def test_config_changed_after_fit_is_checked_at_detect(fitted, small_stations, small_periods):
    det = copy.deepcopy(fitted)
    det.config.window = "0h"
    with pytest.raises(ConfigError, match="window='0h'"):
        det.detect(small_stations, monitor=small_periods["monitor"])


# --------------------------------------------------------------------------- run dir / io
def test_corrupt_manifest_and_missing_model(tmp_path, small_stations, make_det):
    rd = tmp_path / "run"
    rd.mkdir()
    (rd / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="manifest.json is unreadable"):
        KoopmanAnomalyDetector.load(rd)
    with pytest.raises(ConfigError, match="--force"):
        make_det().fit(small_stations, run_dir=rd, progress=False)
    (rd / "manifest.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(ConfigError, match="not a koopman_anomaly manifest"):
        KoopmanAnomalyDetector.load(rd)
    # force rebuilds a corrupt run
    make_det().fit(small_stations, run_dir=rd, force=True, progress=False)
    (rd / "models" / "S00" / "obs" / "model.json").unlink()
    with pytest.raises(ConfigError, match="station S00: model .* missing"):
        KoopmanAnomalyDetector.load(rd)


def test_write_to_directory_and_open_directory(tmp_path):
    ds = xr.Dataset({"a": ("time", np.ones(3))})
    with pytest.raises(AnomalyError, match="is a directory; give a file name"):
        io.write_netcdf_atomic(ds, tmp_path)
    with pytest.raises(AnomalyError, match="is a directory"):
        io.write_json_atomic({}, tmp_path)
    with pytest.raises(InvalidDataError, match="is a directory; give the path of a netCDF"):
        io.open_dataset(tmp_path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ building blocks
def test_building_blocks():
    with pytest.raises(ConfigError, match="whole number of steps"):
        window_stats(np.ones(10), 2.5)
    with pytest.raises(ConfigError, match="whole number of steps"):
        window_stats(np.ones(10), 0)
    with pytest.raises(ConfigError, match="stat must be 'mean' or 'msq'"):
        HACNull().fit(np.random.default_rng(0).normal(size=500), 24, "var")
    with pytest.raises(ConfigError, match="not accepted by the harmonic forecaster"):
        make_forecaster("harmonic", epochs=3)
    with pytest.raises(ConfigError, match="forecaster must be"):
        make_forecaster("prophet")


def test_grid_bad_periods_and_options():
    g = synth.make_grid(seed=0, shape=(2, 2), start="2019-01-01", end="2019-03-31 23:00")
    da = g[[v for v in g.data_vars if g[v].ndim == 3][0]]
    per = (("2019-01-01", "2019-01-31"), ("2019-02-01", "2019-02-28"))
    with pytest.raises(ConfigError, match="no data inside the monitor period"):
        grid.detect_grid(da, *per, ("2020-01-01", "2020-01-31"))
    with pytest.raises(ConfigError, match="fewer than the window"):
        grid.detect_grid(da, *per, ("2019-03-01", "2019-03-02"))
    with pytest.raises(ConfigError, match="'foo'|not a \\(start, end\\)"):
        grid.detect_grid(da, *per, ("foo", "bar"))
    with pytest.raises(ConfigError, match="alpha must lie"):
        grid.detect_grid(da, *per, ("2019-03-01", "2019-03-31"), grid.GridConfig(alpha=0.0))
    with pytest.raises(ConfigError, match="disjoint"):
        grid.detect_grid(da, *per, ("2019-01-15", "2019-01-31"))
    # the station detector's hourly-axis rule holds on grids too: windows count steps
    with pytest.raises(InvalidDataError, match="time step is 0 days 02:00:00, not 1 h"):
        grid.detect_grid(da.isel(time=slice(None, None, 2)), *per, ("2019-03-01", "2019-03-31"))
    gappy = da.drop_isel(time=[100])
    with pytest.raises(InvalidDataError, match="hourly time axis is incomplete"):
        grid.detect_grid(gappy, *per, ("2019-03-01", "2019-03-31"))
