import numpy as np
import pandas as pd
import pytest
import xarray as xr
from koopman_anomaly import io, prep, synth
from koopman_anomaly.errors import InvalidDataError


def _tiny():
    t = pd.date_range("2020-01-01", periods=10, freq="h")
    return xr.Dataset(
        {"no2": (("time", "site"), np.ones((10, 2)) * 5, {"units": "ug m-3"})},
        coords={"time": t, "site": ["a", "b"]},
    )


def test_aliases_and_validation():
    ds = io.validate(_tiny(), "no2")
    assert ds["no2"].dims == ("time", "station")


def test_missing_variable_lists_present():
    with pytest.raises(InvalidDataError, match=r"variables present: \['no2'\]"):
        io.validate(_tiny(), "o3")


def test_wrong_dims_names_accepted_layouts():
    ds = _tiny().rename({"site": "sensor"})
    with pytest.raises(InvalidDataError, match="accepted are"):
        io.validate(ds, "no2")


def test_duplicate_and_nonmonotonic_time():
    ds = _tiny()
    t = ds.time.values.copy()
    t[5] = t[4]
    with pytest.raises(InvalidDataError, match="duplicate timestamp"):
        io.validate(ds.assign_coords(time=t), "no2")
    t = ds.time.values.copy()
    t[[3, 4]] = t[[4, 3]]
    with pytest.raises(InvalidDataError, match="not increasing"):
        io.validate(ds.assign_coords(time=t), "no2")


def test_units_checks():
    ds = _tiny()
    ds["no2"].attrs = {}
    with pytest.raises(InvalidDataError, match="no `units`"):
        io.validate(ds, "no2")
    ds["no2"].attrs = {"units": "K"}
    with pytest.raises(InvalidDataError, match="not a concentration"):
        io.validate(ds, "no2")
    io.validate(ds, "no2", transform="none")


def test_missing_coordinates_grid():
    ds = xr.Dataset(
        {"no2": (("time", "lat", "lon"), np.ones((3, 2, 2)), {"units": "ppb"})},
        coords={"time": pd.date_range("2020", periods=3, freq="h")},
    )
    with pytest.raises(InvalidDataError, match="lacks the `lat` coordinate"):
        io.validate(ds, "no2")


def test_unreadable_file(tmp_path):
    p = tmp_path / "bad.nc"
    p.write_text("not netcdf")
    with pytest.raises(InvalidDataError, match="netcdf4"):
        io.open_dataset(p)
    with pytest.raises(InvalidDataError, match="file not found"):
        io.open_dataset(tmp_path / "nope.nc")


def test_undecodable_time(tmp_path):
    ds = _tiny()
    ds = ds.assign_coords(time=np.arange(10.0))
    ds["time"].attrs["units"] = "fortnights after the flood"
    p = tmp_path / "t.nc"
    ds.to_netcdf(p, engine="netcdf4")
    with pytest.raises(InvalidDataError, match="time"):
        io.validate(io.open_dataset(p), "no2")


def test_atomic_write_keeps_good_file_on_failure(tmp_path):
    p = tmp_path / "out.nc"
    io.write_netcdf_atomic(_tiny(), p)
    good = p.read_bytes()
    bad = _tiny()
    bad["oops"] = ("time", np.array([object()] * 10, dtype=object))
    with pytest.raises(Exception):  # noqa: B017
        io.write_netcdf_atomic(bad, p)
    assert p.read_bytes() == good
    assert [f.name for f in tmp_path.iterdir()] == ["out.nc"]


def test_log_floor_policies():
    x = np.array([[4.0, 1.0], [0.0, 2.0], [-1.0, np.nan], [8.0, 4.0]])
    m = prep.transform_values(x, "log", "mask")
    assert np.isnan(m.values[1, 0]) and np.isnan(m.values[2, 0]) and np.isnan(m.values[2, 1])
    assert m.n_nonpositive.tolist() == [2, 0]
    h = prep.transform_values(x, "log", "half_min")
    assert h.values[1, 0] == pytest.approx(np.log(2.0))  # half of min positive (4)
    assert np.isnan(h.values[2, 1])  # gaps are never imputed


def test_haversine_and_dbscan():
    assert prep.haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=2)
    # across the antimeridian: 179.5E and 179.5W at the equator are ~111 km apart
    assert prep.haversine_km(0, 179.5, 0, -179.5) == pytest.approx(111.2, abs=1)
    lat = [48.8, 48.9, 49.0, 48.7, 40.4, 40.5, 40.3, 40.6, 10.0]
    lon = [2.3, 2.4, 2.2, 2.5, -3.7, -3.6, -3.8, -3.5, 100.0]
    lab = prep.dbscan_haversine(np.array(lat), np.array(lon), 500, 4)
    assert len(set(lab[:4])) == 1 and len(set(lab[4:8])) == 1 and lab[0] != lab[4] and lab[8] == -1


def test_align_reference_offset_and_bounded_interp():
    t = pd.date_range("2020-01-01", periods=8, freq="h")
    ref = np.arange(8.0)
    out = prep.align_reference(ref, t, "-30min")
    # value at t comes from ref time t+30min... shifted source times are t-30min
    assert out[1] == pytest.approx(1.5)
    ref2 = ref.copy()
    ref2[3:6] = np.nan
    out2 = prep.align_reference(ref2, t, "-30min")
    assert np.isnan(out2[4])


def test_synth_structure_and_roundtrip(tmp_path):
    ds = synth.make_stations(seed=1, n_stations=4, start="2019-06-01", end="2020-09-30 23:00")
    assert ds.no2.dims == ("time", "station")
    lab = ds.anomaly.values
    clusters = ds.cluster.values
    assert (lab[:, clusters == "A"] == 1).any() and not (lab[:, clusters == "B"] == 1).any()
    assert (lab == 2).sum() > 0
    x = np.log(ds.no2.where(ds.no2 > 0)).values
    m = np.log(ds.model_no2).values
    # the twin shares weather and stagnation: residual correlation after removing the daily cycle
    d1 = pd.DataFrame(x).diff(24).values
    d2 = pd.DataFrame(m).diff(24).values
    ok = np.isfinite(d1[:, 2]) & np.isfinite(d2[:, 2])
    assert np.corrcoef(d1[ok, 2], d2[ok, 2])[0, 1] > 0.4
    assert 0.03 < np.isnan(ds.no2.values).mean() < 0.08
    p = io.write_netcdf_atomic(ds, tmp_path / "s.nc")
    back = io.open_dataset(p)
    assert back.attrs["Conventions"] == "CF-1.8" and back.no2.attrs["units"] == "ug m-3"
    np.testing.assert_allclose(back.no2.values, ds.no2.values)
    same = synth.make_stations(seed=1, n_stations=4, start="2019-06-01", end="2020-09-30 23:00")
    np.testing.assert_array_equal(same.no2.values, ds.no2.values)
    null = synth.make_stations(
        seed=1, n_stations=4, start="2019-06-01", end="2020-09-30 23:00", anomalies=False
    )
    assert (null.anomaly.values == 0).all()


def test_synth_lockdown_size_in_log_space():
    kw = dict(
        seed=5, n_stations=2, start="2020-01-01", end="2020-06-30 23:00", faults=False, n_spikes=0
    )
    a = synth.make_stations(anomalies=True, **kw)
    b = synth.make_stations(anomalies=False, **kw)
    diff = np.log(a.no2.values) - np.log(b.no2.values)
    mid = (a.time.values >= np.datetime64("2020-04-01")) & (
        a.time.values < np.datetime64("2020-05-01")
    )
    np.testing.assert_allclose(diff[mid, 0], -0.35, atol=1e-9)
    np.testing.assert_allclose(diff[:, 1], 0.0, atol=1e-12)
