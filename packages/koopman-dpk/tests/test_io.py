"""Persistence: safetensors + JSON round trips, atomic writes, clear errors on bad directories."""

import json

import numpy as np
import pandas as pd
import pytest
from koopman_dpk import DPK, DPKPersistenceError
from safetensors.numpy import load_file, save_file


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    idx = pd.date_range("2020-01-01", periods=300, freq="h")
    x = pd.DataFrame({"temp": rng.normal(size=300)}, index=idx)
    y = pd.Series(
        5 + np.cos(2 * np.pi * np.arange(300) / 24) + x["temp"].to_numpy(), index=idx, name="load"
    )
    m = DPK(
        "studentt",
        periods=["24h"],
        n_search=1,
        epochs=12,
        search_interval=5,
        search_cutoff=10,
        conformal=True,
        residual_ar=1,
        seed=2,
    )
    return m.fit(y, covariates=x), x


def test_round_trip_gives_identical_forecasts(tmp_path, fitted):
    m, x = fitted
    fut = pd.date_range("2020-01-13 12:00", periods=12, freq="h")
    cov = pd.DataFrame({"temp": np.linspace(-1, 1, 12)}, index=fut)
    m.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary directory left
    m2 = DPK.load(tmp_path / "model")
    a, b = m.predict(times=fut, covariates=cov), m2.predict(times=fut, covariates=cov)
    pd.testing.assert_series_equal(a.mean(), b.mean())
    pd.testing.assert_frame_equal(a.quantile([0.1, 0.9]), b.quantile([0.1, 0.9]))
    assert m2.periods_ == m.periods_
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["schema_version"] == 1 and cfg["seed"] == 2 and cfg["covariate_names"] == ["temp"]
    assert cfg["time_axis"]["kind"] == "datetime" and cfg["time_axis"]["unit"] == 3.6e12


def test_overwrite_is_explicit(tmp_path, fitted):
    m, _ = fitted
    m.save(tmp_path / "m")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        m.save(tmp_path / "m")
    m.save(tmp_path / "m", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_load_errors_name_the_problem(tmp_path, fitted):
    m, _ = fitted
    with pytest.raises(DPKPersistenceError, match="no model.safetensors"):
        DPK.load(tmp_path)
    m.save(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "schema_version": 99}))
    with pytest.raises(DPKPersistenceError, match="newer"):
        DPK.load(tmp_path / "m")
    cfg_path.write_text(json.dumps(cfg))
    tensors = load_file(tmp_path / "m" / "model.safetensors")
    key = next(k for k in tensors if k.endswith("heads.0.0.weight"))
    bad = dict(tensors)
    bad[key] = np.zeros((3, 3), dtype=tensors[key].dtype)
    save_file(bad, tmp_path / "m" / "model.safetensors")
    with pytest.raises(DPKPersistenceError, match="shape"):
        DPK.load(tmp_path / "m")
    del bad[key]
    save_file(bad, tmp_path / "m" / "model.safetensors")
    with pytest.raises(DPKPersistenceError, match="missing tensor"):
        DPK.load(tmp_path / "m")


def test_round_trip_keeps_piecewise_trend_level_offset_and_scale_calibration(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(600, dtype=float)
    y = 0.01 * t + np.cos(2 * np.pi * t / 24) + rng.normal(0, 0.3, 600)
    m = DPK(
        periods=[24],
        trend="piecewise",
        n_changepoints=4,
        changepoint_range=0.9,
        level_window=48,
        calibration="scale",
        val_span=100,
        epochs=5,
        search_cutoff=0,
        seed=0,
    ).fit(y)
    assert m.scale_calibration_ is not None and float(m.net_.level_offset.abs().sum()) > 0
    m.save(tmp_path / "m")
    m2 = DPK.load(tmp_path / "m")
    np.testing.assert_array_equal(m2.scale_calibration_, m.scale_calibration_)
    a, b = m.predict(horizon=50), m2.predict(horizon=50)
    np.testing.assert_allclose(
        np.asarray(a.quantile([0.1, 0.9])), np.asarray(b.quantile([0.1, 0.9]))
    )


@pytest.mark.parametrize("method", ["holt", "comb", "AAN"])
def test_round_trip_keeps_the_level_trend(tmp_path, method):
    rng = np.random.default_rng(2)
    t = np.arange(600, dtype=float)
    y = np.cos(2 * np.pi * t / 24) + 0.003 * np.maximum(t - 450, 0) + rng.normal(0, 0.2, 600)
    m = DPK(
        periods=[24], level_window=24, level_method=method, epochs=5, search_cutoff=0, seed=0
    ).fit(y)
    m.save(tmp_path / "m")
    m2 = DPK.load(tmp_path / "m")
    assert type(m2.level_trend_) is type(m.level_trend_)
    assert m2.level_trend_ == m.level_trend_
    # the quantiles carry the level forecast's variance as well as its correction
    np.testing.assert_array_equal(
        np.asarray(m.predict(horizon=60).quantile([0.1, 0.9])),
        np.asarray(m2.predict(horizon=60).quantile([0.1, 0.9])),
    )


def test_files_saved_before_linear_periods_still_load(tmp_path, fitted):
    # a model directory written before the linear Fourier slots existed has neither their
    # (empty) tensors nor "linear_omegas" in config.json: it loads, with the same forecasts
    m, x = fitted
    m.save(tmp_path / "old")
    tensors = load_file(tmp_path / "old" / "model.safetensors")
    old = {k: v for k, v in tensors.items() if "linear_omega" not in k and "trend_fourier" not in k}
    assert len(old) == len(tensors) - 2
    save_file(old, tmp_path / "old" / "model.safetensors")
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("linear_omegas")
    cfg_path.write_text(json.dumps(cfg))
    back = DPK.load(tmp_path / "old")
    fut = x.index[-1] + pd.Timedelta("1h") * np.arange(1, 7)
    cov = pd.DataFrame({"temp": np.zeros(6)}, index=fut)
    np.testing.assert_allclose(
        np.asarray(back.predict(times=fut, covariates=cov).mean()),
        np.asarray(m.predict(times=fut, covariates=cov).mean()),
        rtol=1e-6,
    )
    assert back.linear_periods_ == []
