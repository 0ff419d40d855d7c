"""Behaviour of fitted models against known ground truth."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from koopman_dpk import DPK
from koopman_dpk.net import DPKNet, count_parameters


def sinusoid(T=600, period=24.0, noise=0.5, seed=0, level=10.0):
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=float)
    return level + 3 * np.cos(2 * np.pi * t / period) + noise * rng.normal(size=T)


def test_pure_sinusoid_recovers_the_noise_scale():
    y = sinusoid(T=1200, noise=0.5, seed=1)
    m = DPK(periods=[24], epochs=60, lr=1e-2, patience=15, search_cutoff=0, seed=0).fit(y)
    fc = m.predict(horizon=240)
    sigma = np.asarray(fc.params["sigma"])
    assert abs(np.median(sigma) - 0.5) / 0.5 < 0.1, np.median(sigma)
    t_future = np.arange(1200, 1440)
    truth = 10 + 3 * np.cos(2 * np.pi * t_future / 24)
    assert np.max(np.abs(np.asarray(fc.mean()) - truth)) < 0.25


def test_heteroscedastic_noise_scale_follows_the_period():
    rng = np.random.default_rng(2)
    t = np.arange(1500.0)
    sd = 0.3 + 0.25 * (1 + np.sin(2 * np.pi * t / 24))  # 0.3 .. 0.8
    y = 5 + np.cos(2 * np.pi * t / 24) + sd * rng.normal(size=t.size)
    m = DPK(periods=[24], epochs=60, lr=1e-2, search_cutoff=0, seed=0).fit(y)
    sigma = np.asarray(m.predict(times=np.arange(1500, 1524)).params["sigma"])
    true = 0.3 + 0.25 * (1 + np.sin(2 * np.pi * np.arange(1500, 1524) / 24))
    assert np.corrcoef(sigma, true)[0, 1] > 0.9


def test_same_seed_same_model_different_seed_different_model():
    y = sinusoid(T=300)
    a = DPK(periods=[24], epochs=4, seed=3).fit(y).predict(horizon=10)
    b = DPK(periods=[24], epochs=4, seed=3).fit(y).predict(horizon=10)
    c = DPK(periods=[24], epochs=4, seed=4).fit(y).predict(horizon=10)
    np.testing.assert_array_equal(np.asarray(a.mean()), np.asarray(b.mean()))
    assert not np.allclose(np.asarray(a.mean()), np.asarray(c.mean()))
    np.testing.assert_array_equal(a.sample(5, seed=1), b.sample(5, seed=1))


def test_early_stopping_stops_and_restores_the_best_epoch():
    y = sinusoid(T=400)
    m = DPK(periods=[24], epochs=400, patience=3, lr=3e-2, search_cutoff=0, seed=0).fit(y)
    n = len(m.history_["val_loss"])
    assert n < 400
    best = int(np.argmin(m.history_["val_loss"]))
    assert m.history_["best_epoch"][0] == best
    assert n - 1 - best == 3  # stopped exactly `patience` epochs after the best


def test_default_model_is_under_10k_parameters_worst_case():
    # 3 heads, K = 6 frequencies each, C = 4 covariates, widths 64/32
    net = DPKNet(
        [[0.1] * 6] * 3, [[False] * 6] * 3, 100.0, 4, (64, 32), 1, "linear", np.zeros((3, 1))
    )
    mlp = sum(p.numel() for n, p in net.named_parameters() if n.startswith("heads."))
    assert mlp == 9603
    assert count_parameters(net) < 10_000
    m = DPK("skewnormal", periods=[24], epochs=1, search_cutoff=0).fit(sinusoid(T=200))
    assert m.n_parameters_ < 10_000


def test_linear_trend_extrapolates():
    rng = np.random.default_rng(5)
    t = np.arange(800.0)
    y = 0.01 * t + np.cos(2 * np.pi * t / 24) + 0.2 * rng.normal(size=t.size)
    m = DPK(periods=[24], epochs=60, lr=1e-2, search_cutoff=0, seed=0).fit(y)
    future = np.arange(1400, 1424)
    mean = np.asarray(m.predict(times=future).mean())
    truth = 0.01 * future + np.cos(2 * np.pi * future / 24)
    assert abs(np.mean(mean - truth)) < 0.3  # 600 steps past the data; tanh-of-time would saturate


def test_covariates_pandas_and_scenarios():
    rng = np.random.default_rng(6)
    idx = pd.date_range("2021-01-01", periods=600, freq="h")
    temp = pd.Series(rng.normal(size=600), index=idx, name="temp")
    y = pd.Series(
        2 * temp.to_numpy() + np.cos(2 * np.pi * np.arange(600) / 24) + 10, index=idx, name="load"
    )
    m = DPK(periods=["24h"], epochs=40, lr=1e-2, search_cutoff=0, seed=0).fit(
        y, covariates=temp.to_frame()
    )
    fut = pd.date_range(idx[-1] + pd.Timedelta("1h"), periods=24, freq="h")
    hot = pd.DataFrame({"temp": np.full(24, 1.0)}, index=fut)
    cold = pd.DataFrame({"temp": np.full(24, -1.0)}, index=fut)
    mh = m.predict(times=fut, covariates=hot).mean()
    mc = m.predict(times=fut, covariates=cold).mean()
    assert isinstance(mh, pd.Series) and (mh - mc).mean() > 3.0  # effect 2 * (1 - (-1)) = 4
    mix = m.predict(times=fut, scenarios=[hot, cold])
    assert mix.n_scenarios == 2
    np.testing.assert_allclose(mix.mean().to_numpy(), 0.5 * (mh + mc).to_numpy(), rtol=1e-9)
    q = mix.quantile([0.1, 0.9])
    assert list(q.columns) == [0.1, 0.9]
    with pytest.raises(ValueError, match="temp"):
        m.predict(times=fut)


def test_xarray_multioutput_in_and_out():
    t = pd.date_range("2022-01-01", periods=400, freq="h")
    rng = np.random.default_rng(7)
    base = np.cos(2 * np.pi * np.arange(400) / 24)
    data = np.stack([base + 0.1 * rng.normal(size=400), -base + 5 + 0.1 * rng.normal(size=400)], 1)
    da = xr.DataArray(data, dims=("time", "station"), coords={"time": t, "station": ["a", "b"]})
    m = DPK(periods=["24h"], epochs=30, lr=1e-2, search_cutoff=0, seed=0).fit(da)
    fc = m.predict(horizon=24)
    mean = fc.mean()
    assert isinstance(mean, xr.DataArray) and mean.dims == ("time", "station")
    np.testing.assert_allclose(
        mean.sel(station="a").values + mean.sel(station="b").values, 5, atol=0.4
    )
    assert fc.quantile([0.1, 0.9]).dims == ("time", "station", "quantile")
    assert "mean" in fc.to_xarray()


def test_poisson_counts_fit():
    rng = np.random.default_rng(8)
    t = np.arange(800.0)
    lam = np.exp(1.5 + 0.8 * np.cos(2 * np.pi * t / 24))
    y = rng.poisson(lam).astype(float)
    m = DPK("poisson", periods=[24], epochs=40, lr=1e-2, search_cutoff=0, seed=0).fit(y)
    fut = np.arange(800, 824)
    rate = np.asarray(m.predict(times=fut).params["rate"])
    true = np.exp(1.5 + 0.8 * np.cos(2 * np.pi * fut / 24))
    assert np.max(np.abs(np.log(rate) - np.log(true))) < 0.25


def test_conformal_mse_quantiles_and_residual_ar():
    rng = np.random.default_rng(9)
    t = np.arange(800.0)
    e = np.zeros(t.size)
    for i in range(1, t.size):
        e[i] = 0.8 * e[i - 1] + 0.3 * rng.normal()
    y = np.cos(2 * np.pi * t / 24) + e
    m = DPK("mse", periods=[24], epochs=20, conformal=True, search_cutoff=0, seed=0).fit(y)
    lo, hi = m.predict(horizon=48).interval(0.8)
    assert np.all(np.asarray(hi) > np.asarray(lo))
    ar = DPK(periods=[24], epochs=20, residual_ar=1, search_cutoff=0, seed=0).fit(y)
    plain = DPK(periods=[24], epochs=20, search_cutoff=0, seed=0).fit(y)
    w_ar = np.diff(np.asarray(ar.predict(horizon=5).quantile([0.1, 0.9])), axis=1)[:, 0]
    w_plain = np.diff(np.asarray(plain.predict(horizon=5).quantile([0.1, 0.9])), axis=1)[:, 0]
    assert w_ar[0] < 0.8 * w_plain[0]  # lead 1 is sharper with the AR correction
    assert abs(ar.ar_["phi"][0, 0] - 0.8) < 0.15


def test_update_fine_tunes():
    y = sinusoid(T=500)
    m = DPK(periods=[24], epochs=5, search_cutoff=0, seed=0).fit(y[:400])
    before = m.predict(times=np.arange(400, 500)).nll(y[400:]).mean()
    m.update(y[400:], times=np.arange(400, 500), epochs=20)
    after = m.predict(times=np.arange(400, 500)).nll(y[400:]).mean()
    assert after < before


def test_refit_full_trains_on_the_validation_tail_for_the_best_epoch_count():
    # a covariate switches on only in the last 10% (the validation tail), adding +3: only a
    # refit on all data can learn its effect
    rng = np.random.default_rng(10)
    t = np.arange(600.0)
    x = (t >= 540).astype(float)
    y = 5 + np.cos(2 * np.pi * t / 24) + 3 * x + 0.2 * rng.normal(size=t.size)
    kw = dict(periods=[24], epochs=30, lr=1e-2, search_cutoff=0, trend="constant", seed=0)
    plain = DPK(**kw).fit(y, covariates=x)
    full = DPK(**kw, refit_full=True).fit(y, covariates=x)
    assert full.history_["refit_epochs"] == [plain.history_["best_epoch"][0] + 1]
    tail = np.arange(540, 600)
    pm = np.asarray(plain.predict(times=tail, covariates=x[540:]).mean())
    fm = np.asarray(full.predict(times=tail, covariates=x[540:]).mean())
    err_plain = np.mean(np.abs(pm - y[540:]))
    err_full = np.mean(np.abs(fm - y[540:]))
    assert err_full < 0.6 and err_full < 0.5 * err_plain, (err_full, err_plain)
