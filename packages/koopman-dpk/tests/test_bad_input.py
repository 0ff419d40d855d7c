"""Bad input: a clear DPKInputError naming the problem, or documented handling; never NaN params."""

import numpy as np
import pandas as pd
import pytest
import torch
from koopman_dpk import DPK, DPKDivergenceError, DPKInputError, DPKNotFittedError


def series(T=200, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return 5 + np.cos(2 * np.pi * t / 24) + 0.3 * rng.normal(size=T)


FAST = {"periods": [24], "epochs": 3, "search_cutoff": 0}


def test_nan_values_are_dropped_with_a_counted_warning_and_params_stay_finite():
    y = series()
    y[[10, 11, 50]] = np.nan
    with pytest.warns(UserWarning, match="dropped 3 time"):
        m = DPK(**FAST).fit(y)
    fc = m.predict(horizon=5)
    for v in fc.params.values():
        assert np.all(np.isfinite(np.asarray(v)))
    for p in m.net_.parameters():
        assert torch.isfinite(p).all()


def test_leading_nan_keeps_tau_non_negative():
    y = series()
    y[:3] = np.nan
    with pytest.warns(UserWarning):
        m = DPK(**FAST).fit(y, times=np.arange(200.0))
    assert m.training_range_[0] == 0.0
    assert np.isfinite(np.asarray(m.predict(times=[200.0]).mean())).all()


def test_inf_raises_naming_the_index():
    y = series()
    y[7] = np.inf
    with pytest.raises(DPKInputError, match="index 7"):
        DPK(**FAST).fit(y)


@pytest.mark.parametrize(
    "y",
    [np.array([]), pd.Series([], dtype=float, index=pd.DatetimeIndex([]))],
    ids=["numpy", "pandas"],
)
def test_empty_series_raises_a_clear_error(y):
    with pytest.raises(DPKInputError, match="y is empty"):
        DPK(**FAST).fit(y)


def test_all_nan_series_raises_naming_the_count():
    with pytest.raises(DPKInputError, match="all 200 times are NaN"):
        DPK(**FAST).fit(np.full(200, np.nan))


def test_duplicate_timestamps_raise_naming_the_first():
    idx = pd.date_range("2020-01-01", periods=200, freq="h").tolist()
    idx[100] = idx[99]
    s = pd.Series(series(), index=pd.DatetimeIndex(idx))
    with pytest.raises(DPKInputError, match="duplicate timestamp at position 100"):
        DPK(**{**FAST, "periods": ["24h"]}).fit(s)


def test_non_monotonic_timestamps_raise_or_are_sorted_on_request():
    t = np.arange(200.0)
    t[[50, 51]] = t[[51, 50]]
    with pytest.raises(DPKInputError, match="position 51"):
        DPK(**FAST).fit(series(), times=t)
    m = DPK(**FAST).fit(series(), times=t, sort=True)
    assert m.training_range_ == (0.0, 199.0)


def test_mixed_naive_and_aware_times_raise():
    times = list(pd.date_range("2020-01-01", periods=200, freq="h"))
    times[5] = times[5].tz_localize("UTC")
    with pytest.raises(DPKInputError, match="naive and tz-aware"):
        DPK(**{**FAST, "periods": ["24h"]}).fit(series(), times=np.array(times, dtype=object))


def test_constant_series_raises():
    with pytest.raises(DPKInputError, match="constant"):
        DPK(**FAST).fit(np.full(200, 3.0))


def test_constant_or_nan_covariate_raises_naming_it():
    cov = pd.DataFrame({"temp": np.random.default_rng(0).normal(size=200), "flat": 1.0})
    with pytest.raises(DPKInputError, match="'flat'"):
        DPK(**FAST).fit(series(), covariates=cov)
    cov["flat"] = np.arange(200.0)
    cov.loc[3, "temp"] = np.nan
    with pytest.raises(DPKInputError, match="'temp'"):
        DPK(**FAST).fit(series(), covariates=cov)
    with pytest.raises(DPKInputError, match="rows"):
        DPK(**FAST).fit(series(), covariates=np.ones((10, 1)))


@pytest.mark.parametrize("dist", ["gamma"])
def test_gamma_rejects_non_positive_values(dist):
    y = series()
    y[[20, 30]] = [-1.0, 0.0]
    with pytest.raises(DPKInputError, match=r"2 value\(s\) are <= 0 \(first at index 20"):
        DPK(dist, **FAST).fit(y)


@pytest.mark.parametrize("dist", ["poisson", "negbin"])
def test_count_models_reject_negative_and_fractional(dist):
    y = np.random.default_rng(0).poisson(3, 200).astype(float)
    y[15] = -2
    with pytest.raises(DPKInputError, match="first at index 15"):
        DPK(dist, **FAST).fit(y)
    y[15] = 2.5
    with pytest.raises(DPKInputError, match="negative or fractional"):
        DPK(dist, **FAST).fit(y)


def test_configuration_errors():
    with pytest.raises(DPKInputError, match="choose one of"):
        DPK("lognormal")
    with pytest.raises(DPKInputError, match="unknown DPK argument"):
        DPK(epoch=3)
    with pytest.raises(DPKInputError, match="at least 50"):
        DPK(**FAST).fit(series(T=30))
    with pytest.raises(DPKInputError, match="<= 2 steps"):
        DPK(**{**FAST, "periods": [1.5]}).fit(series())
    with pytest.raises(DPKInputError, match="half the span"):
        DPK(**{**FAST, "periods": [150]}).fit(series(T=300))
    with pytest.raises(DPKInputError, match="smaller than the 2 pinned"):
        DPK(**{**FAST, "periods": [24, 12], "num_freqs": 1}).fit(series())
    with pytest.raises(DPKInputError, match="no datetime index"):
        DPK(**{**FAST, "periods": ["24h"]}).fit(series())
    m = DPK("mse", **FAST).fit(series())
    with pytest.raises(DPKInputError, match="conformal=True"):
        m.predict(horizon=3).quantile(0.5)
    with pytest.raises(DPKNotFittedError, match="not fitted"):
        DPK().predict(horizon=3)


def test_divergence_restores_the_best_checkpoint_and_raises(monkeypatch):
    m = DPK(**{**FAST, "epochs": 6})
    real = m.dist.nll_torch
    calls = {"n": 0}

    def flaky(params, y):
        calls["n"] += 1
        out = real(params, y)
        return out * float("nan") if calls["n"] > 5 else out

    monkeypatch.setattr(m.dist, "nll_torch", flaky)
    with pytest.raises(DPKDivergenceError, match="restored"):
        m.fit(series())
    for p in m.net_.parameters():
        assert torch.isfinite(p).all()


@pytest.mark.parametrize(
    "setting, value",
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("patience", 0),
        ("lr", -1e-3),
        ("lr", float("nan")),
        ("weight_decay", -1.0),
        ("calibration_folds", 0),
        ("n_changepoints", 0),
        ("epochs", 2.5),
        ("val_fraction", 1.0),
        ("hidden", (64, 0)),
    ],
)
def test_out_of_range_settings_name_the_setting(setting, value):
    with pytest.raises(DPKInputError, match=f"^{setting} must be"):
        DPK(**{**FAST, setting: value})


def test_non_numeric_y_or_covariates_name_the_input():
    with pytest.raises(DPKInputError, match="y must be numeric"):
        DPK(**FAST).fit(np.array(["a"] * 200))
    cov = np.array(["warm"] * 200)
    with pytest.raises(DPKInputError, match="covariates must be numeric"):
        DPK(**FAST).fit(series(), covariates=cov)


@pytest.mark.parametrize("what", ["sample_weight", "mask"])
def test_no_point_left_to_train_on_is_an_error(what):
    off = np.zeros(200, bool) if what == "mask" else np.zeros(200)
    with pytest.raises(DPKInputError, match="nothing to train on"):
        DPK(**FAST).fit(series(), **{what: off})


def test_predict_times_empty_missing_or_of_the_wrong_zone():
    m = DPK(**FAST).fit(series())
    with pytest.raises(DPKInputError, match="times is empty"):
        m.predict(times=[])
    with pytest.raises(DPKInputError, match="non-finite value at index 1"):
        m.predict(times=[201.0, np.nan])
    idx = pd.date_range("2020-01-01", periods=200, freq="h")
    md = DPK(**{**FAST, "periods": ["24h"]}).fit(pd.Series(series(), index=idx))
    ahead = pd.date_range("2020-01-09 08:00", periods=3, freq="h")
    with pytest.raises(DPKInputError, match="NaT"):
        md.predict(times=pd.DatetimeIndex([ahead[0], pd.NaT]))
    # a naive model reads naive times as given; a tz-aware time is refused, not shifted
    with pytest.raises(DPKInputError, match="fitted on naive times"):
        md.predict(times=ahead.tz_localize("Europe/Berlin"))
    assert np.isfinite(np.asarray(md.predict(times=ahead).mean())).all()


def test_update_checks_epochs_time_order_and_empty_data():
    m = DPK(**FAST).fit(series())
    with pytest.raises(DPKInputError, match="y is empty"):
        m.update(np.array([]))
    with pytest.raises(DPKInputError, match="epochs must be an integer >= 1"):
        m.update(series(24), times=np.arange(200.0, 224.0), epochs=0)
    t = np.arange(200.0, 224.0)
    t[[3, 4]] = t[[4, 3]]
    with pytest.raises(DPKInputError, match="not increasing: position 4"):
        m.update(series(24), times=t)
