import json

import numpy as np
import pytest
from koopman_anomaly import KoopmanAnomalyDetector, io
from koopman_anomaly.errors import ConfigError, InvalidDataError
from koopman_anomaly.evaluate import event_detection, events_from_labels
from koopman_anomaly.forecast import HarmonicForecaster, NormalPredictive
from koopman_anomaly.residuals import fit_twin, standardised_residuals


def test_pit_residual_equals_normal_z():
    pred = NormalPredictive(np.array([1.0, 2.0]), np.array([0.5, 2.0]))
    z = standardised_residuals(np.array([2.0, np.nan]), pred)
    assert z[0] == pytest.approx(2.0) and np.isnan(z[1])


def test_twin_ols_beta_and_restandardisation():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=5000)
    z = 0.8 * shared + 0.6 * rng.normal(size=5000)
    zr = shared
    td = fit_twin(z, zr, "ols")
    assert td.beta == pytest.approx(0.8, abs=0.03)
    zeta = td.apply(z, zr)
    assert np.std(zeta) == pytest.approx(1.0, abs=0.02)
    td1 = fit_twin(z, zr, 1.0)
    assert td1.beta == 1.0 and td1.sd == pytest.approx(np.sqrt(0.04 + 0.36), abs=0.03)


def test_harmonic_forecaster_recovers_cycle_and_roundtrip(tmp_path):
    import pandas as pd

    t = pd.date_range("2020-01-01", periods=24 * 60, freq="h")
    y = (
        1
        + 0.5 * np.sin(2 * np.pi * np.arange(len(t)) / 24)
        + np.random.default_rng(0).normal(0, 0.1, len(t))
    )
    fc = HarmonicForecaster(periods=("24h",), harmonics=(1,)).fit(y, t)
    pr = fc.predict(t)
    assert np.mean(pr.std()) == pytest.approx(0.1, rel=0.15)
    fc.save(tmp_path)
    back = HarmonicForecaster.load(tmp_path)
    np.testing.assert_allclose(back.predict(t).mean(), pr.mean())


def test_twin_detects_lockdown_and_status(small_stations, small_periods, make_det):
    ds = small_stations.copy(deep=True)
    ds["no2"].values[:, 3] = np.nan  # an all-NaN station
    det = make_det(reference="model_no2").fit(ds, progress=False)
    out = det.detect(ds, monitor=small_periods["monitor"])
    assert out.status.values.tolist()[3] == "insufficient_data"
    assert (out.flag.values[:, 3] == 0).all()
    evs = [e for e in events_from_labels(ds.anomaly.values) if e.series != 3]
    hit, delay = event_detection(out.flag.values != 0, evs, 168)
    assert hit.all()
    assert np.nanmedian(delay) <= 2 * 168
    # no flags outside events in cluster B
    b = ds.cluster.values == "B"
    assert (out.flag.values[:, b] == 0).mean() > 0.99
    for v in ("mu", "sigma", "z", "zeta", "window_mean", "stat", "p_value", "q_value", "flag"):
        assert v in out
    assert out.flag.dtype == np.int8
    assert json.loads(out.attrs["config"])["null"] == "hac"


def test_hac_t_null_is_more_conservative_in_the_tail(small_stations, small_periods, make_det):
    det = make_det(reference="model_no2").fit(small_stations, progress=False)
    p_n = det.detect(small_stations, monitor=small_periods["monitor"]).p_value.values
    det.config.null = "hac_t"
    out = det.detect(small_stations, monitor=small_periods["monitor"])
    p_t = out.p_value.values
    tail = np.isfinite(p_n) & (p_n < 0.15)  # |S| > 1 on the tested (lower) side
    assert tail.any() and (p_t[tail] > p_n[tail]).all()
    assert json.loads(out.attrs["config"])["null"] == "hac_t"


def test_output_roundtrip_and_cf(tmp_path, small_stations, small_periods, make_det):
    det = make_det().fit(small_stations, progress=False)
    out = det.detect(small_stations, monitor=small_periods["monitor"])
    p = io.write_netcdf_atomic(out, tmp_path / "det.nc")
    back = io.open_dataset(p)
    assert back.time.encoding["units"].startswith("hours since 1970-01-01")
    assert back.attrs["Conventions"] == "CF-1.8"
    np.testing.assert_allclose(back.p_value.values, out.p_value.values)


def test_run_dir_resume_and_config_guard(tmp_path, small_stations, small_periods, make_det):
    rd = tmp_path / "run"
    det = make_det().fit(small_stations, run_dir=rd, progress=False)
    m = json.loads((rd / "manifest.json").read_text())
    assert set(m["stations"].values()) == {"ok"}
    loaded = KoopmanAnomalyDetector.load(rd)
    a = det.detect(small_stations, monitor=small_periods["monitor"])
    b = loaded.detect(small_stations, monitor=small_periods["monitor"])
    np.testing.assert_allclose(a.p_value.values, b.p_value.values)
    with pytest.raises(ConfigError, match="different configuration"):
        make_det(periods=("24h",), forecaster_options={"harmonics": (2,)}).fit(
            small_stations, run_dir=rd, progress=False
        )
    # a resumed fit reloads finished stations instead of refitting
    det2 = make_det().fit(small_stations, run_dir=rd, progress=False)
    np.testing.assert_allclose(det2.models_["S00"].coef_, det.models_["S00"].coef_)


def test_bad_configs(small_stations, small_periods, make_det):
    with pytest.raises(ConfigError, match="overlaps"):
        make_det(calib=("2019-09-01", "2019-12-31")).fit(small_stations, progress=False)
    with pytest.raises(ConfigError, match="alpha"):
        make_det(alpha=0.7).fit(small_stations, progress=False)
    det = make_det(null="empirical", alpha=0.0002).fit(small_stations, progress=False)
    with pytest.raises(ConfigError, match="hac"):
        det.detect(small_stations, monitor=small_periods["monitor"])
    ds = small_stations.copy(deep=True)
    ds["temperature"].values[-5, 0] = np.nan
    det = make_det().fit(ds, progress=False)
    with pytest.raises(InvalidDataError, match="covariate missing"):
        det.detect(ds, monitor=small_periods["monitor"])


def test_reference_units_mismatch(small_stations, make_det):
    ds = small_stations.copy(deep=True)
    ds["model_no2"].attrs["units"] = "ppb"
    with pytest.raises(InvalidDataError, match="units"):
        make_det(reference="model_no2").fit(ds, progress=False)


@pytest.mark.parametrize("method", ["cusum", "glr"])
def test_sequential_methods_flag_lockdown(small_stations, small_periods, method, make_det):
    det = make_det(reference="model_no2", method=method).fit(small_stations, progress=False)
    out = det.detect(small_stations, monitor=small_periods["monitor"])
    evs = events_from_labels(small_stations.anomaly.values)
    hit, _ = event_detection(out.flag.values != 0, evs, 168)
    assert hit.mean() >= 0.5
    assert np.isfinite(out.cusum.values[out.in_monitor.values == 1]).any()


def test_combination_and_maxt(small_stations, small_periods, make_det):
    det = make_det(reference="model_no2", combine="stouffer", correction="maxt").fit(
        small_stations, progress=False
    )
    out = det.detect(small_stations, monitor=small_periods["monitor"])
    assert "combined_p" in out and np.isfinite(out.combined_p.values).sum() > 10
    assert (
        out.q_value.values[np.isfinite(out.q_value.values)]
        >= out.p_value.values[np.isfinite(out.q_value.values)] - 1e-12
    ).all()


class _StubForecast:
    def __init__(self, n):
        self.n = n

    def mean(self):
        return np.zeros(self.n)

    def std(self):
        return np.ones(self.n)

    def cdf(self, y):
        from scipy import stats

        return stats.norm.cdf(np.asarray(y))


class _StubDPK:
    """Records what the adapter passes to koopman_dpk.DPK."""

    calls: list = []

    def __init__(self, **kw):
        _StubDPK.calls.append(kw)

    def fit(self, series, covariates=None):
        self.fit_cov = covariates
        self.fit_len = len(series)
        return self

    def predict(self, times, covariates=None):
        self.pred_cov = covariates
        return _StubForecast(len(times))


def test_dpk_adapter_moves_long_periods_to_covariates(monkeypatch):
    import koopman_dpk
    import pandas as pd
    from koopman_anomaly.forecast import DPKForecaster

    monkeypatch.setattr(koopman_dpk, "DPK", _StubDPK)
    t = pd.date_range("2019-01-01", periods=24 * 400, freq="h")  # 9600 h < 2 x 8766 h
    y = np.random.default_rng(0).normal(size=len(t))
    y[:10] = np.nan
    cov = np.ones((len(t), 1)) * np.arange(len(t))[:, None]
    f = DPKForecaster(epochs=3).fit(y, t, cov)
    assert _StubDPK.calls[-1]["periods"] == ["24h", "168h"] and f.cov_periods_ == ["8766h"]
    assert f.model_.fit_cov.shape == (len(t) - 10, 3)  # covariate + cos/sin of the annual cycle
    h = np.arange(len(t)) + 0.0
    np.testing.assert_allclose(f.model_.fit_cov[:, 1], np.cos(2 * np.pi * h[10:] / 8766))
    z = standardised_residuals(np.array([0.0, 1.0]), f.predict(t[:2], cov[:2]))
    np.testing.assert_allclose(z, [0.0, 1.0], atol=1e-9)


@pytest.mark.slow
def test_real_dpk_adapter_pit_and_roundtrip(tmp_path):
    """A real (tiny) koopman_dpk.DPK fit through the adapter: the PIT residual of its Normal
    forecast equals (x - mu) / sigma, and save/load reproduces the forecast."""
    import pandas as pd
    from koopman_anomaly.forecast import DPKForecaster, load_forecaster
    from scipy import stats

    t = pd.date_range("2019-01-01", periods=24 * 21, freq="h")
    rng = np.random.default_rng(0)
    h = np.arange(len(t))
    y = 3.0 + 0.4 * np.sin(2 * np.pi * h / 24) + 0.1 * np.cos(2 * np.pi * h / 168)
    y = y + 0.2 * rng.normal(size=len(t))
    y[50:60] = np.nan
    f = DPKForecaster(periods=("24h", "168h"), epochs=3, hidden=(16,)).fit(y[:400], t[:400])
    pr = f.predict(t)
    mu, sd = pr.mean(), pr.std()
    assert np.isfinite(mu).all() and (sd > 0).all()
    z = standardised_residuals(y, pr)
    ok = np.isfinite(y)
    np.testing.assert_allclose(
        z[ok],
        stats.norm.ppf(np.clip(stats.norm.cdf((y[ok] - mu[ok]) / sd[ok]), 1e-12, 1 - 1e-12)),
        atol=1e-6,
    )
    assert np.isnan(z[50:60]).all()
    f.save(tmp_path / "m")
    g = load_forecaster(tmp_path / "m")
    np.testing.assert_allclose(g.predict(t).mean(), mu, rtol=1e-6)
