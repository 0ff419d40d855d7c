"""Seed ensembles: the combined distribution against the members' own forecasts (mixture CDF,
Normal quantile averaging in closed form), seeds, persistence and bad input."""

import numpy as np
import pytest
from koopman_dpk import DPK, DPKEnsemble
from koopman_dpk.errors import DPKInputError, DPKNotFittedError
from scipy import stats

CFG = dict(periods=[24], num_freqs=1, epochs=4, search_cutoff=0, trend="constant")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    t = np.arange(400, dtype=float)
    return np.cos(2 * np.pi * t / 24) + rng.normal(0, 0.3, len(t))


@pytest.fixture(scope="module")
def mixture(data):
    return DPKEnsemble(3, "mixture", seed=5, **CFG).fit(data)


def test_members_are_the_same_model_with_consecutive_seeds(data, mixture):
    assert [m.config.seed for m in mixture.members_] == [5, 6, 7]
    solo = DPK(seed=6, **CFG).fit(data)  # member 1 is exactly a DPK fitted with seed 6
    np.testing.assert_array_equal(
        np.asarray(solo.predict(horizon=10).mean()),
        np.asarray(mixture.members_[1].predict(horizon=10).mean()),
    )


def test_mixture_cdf_mean_and_quantiles_by_hand(mixture):
    fc = mixture.predict(horizon=12)
    mus = np.array([np.asarray(m.predict(horizon=12).mean()).ravel() for m in mixture.members_])
    sds = np.array([np.asarray(m.predict(horizon=12).std()).ravel() for m in mixture.members_])
    y = mus.mean(0) + 0.4
    by_hand = np.mean([stats.norm.cdf(y, mu, sd) for mu, sd in zip(mus, sds, strict=True)], axis=0)
    np.testing.assert_allclose(np.asarray(fc.cdf(y)).ravel(), by_hand, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(fc.mean()).ravel(), mus.mean(0), rtol=1e-9)
    # quantiles invert the mixture CDF
    q = np.asarray(fc.quantile([0.1, 0.5, 0.9])).reshape(12, 3)
    for j, level in enumerate([0.1, 0.5, 0.9]):
        cdf_at_q = np.mean(
            [stats.norm.cdf(q[:, j], mu, sd) for mu, sd in zip(mus, sds, strict=True)], 0
        )
        np.testing.assert_allclose(cdf_at_q, level, atol=1e-6)


def test_quantile_averaging_is_the_normal_with_averaged_mean_and_sd(data):
    ens = DPKEnsemble(3, "quantiles", seed=5, **CFG).fit(data)
    levels = [0.05, 0.25, 0.5, 0.8, 0.99]
    fc = ens.predict(horizon=12)
    member_q = [np.asarray(m.predict(horizon=12).quantile(levels)) for m in ens.members_]
    np.testing.assert_allclose(np.asarray(fc.quantile(levels)), np.mean(member_q, 0), rtol=1e-9)


def test_round_trip_and_errors(tmp_path, data, mixture):
    mixture.save(tmp_path / "ens")
    back = DPKEnsemble.load(tmp_path / "ens")
    assert back.n_members == 3 and back.combine == "mixture"
    assert [m.config.seed for m in back.members_] == [5, 6, 7]
    np.testing.assert_array_equal(
        np.asarray(mixture.predict(horizon=20).quantile([0.1, 0.9])),
        np.asarray(back.predict(horizon=20).quantile([0.1, 0.9])),
    )
    with pytest.raises(FileExistsError, match="overwrite"):
        mixture.save(tmp_path / "ens")
    with pytest.raises(DPKInputError, match="n_members"):
        DPKEnsemble(0, **CFG)
    with pytest.raises(DPKInputError, match="combine"):
        DPKEnsemble(2, "median", **CFG)
    with pytest.raises(DPKInputError, match="mixture"):
        DPKEnsemble(2, "quantiles", distribution="gamma", **CFG)
    assert DPKEnsemble(2, "quantiles", distribution="gaussian", **CFG).combine == "quantiles"
    with pytest.raises(DPKInputError, match="trend"):
        DPKEnsemble(2, trend="cubic", periods=[24])  # member settings are checked up front
    with pytest.raises(DPKNotFittedError):
        DPKEnsemble(2, **CFG).predict(horizon=3)
    # members that transform their forecasts are refused before anything is fitted
    for bad, named in [
        (dict(residual_ar=1), "residual_ar=1"),
        (dict(conformal=True), "conformal=True"),
        (dict(calibration="scale", distribution="t"), "distribution='studentt'"),  # alias
    ]:
        with pytest.raises(DPKInputError, match=named):
            DPKEnsemble(2, **{**CFG, **bad})


def test_ensemble_runs_in_a_backtest():
    import pandas as pd
    from koopman_dpk.backtest import backtest

    idx = pd.date_range("2021-01-01", periods=24 * 30, freq="h")
    rng = np.random.default_rng(1)
    y = pd.Series(np.cos(2 * np.pi * np.arange(len(idx)) / 24) + rng.normal(0, 0.3, len(idx)), idx)
    seen = []
    res = backtest(
        lambda: DPKEnsemble(2, **{**CFG, "periods": ["24h"]}),
        y,
        None,
        origins=["2021-01-25"],
        horizon="2D",
        progress=False,
        on_forecast=lambda origin, fc: seen.append(fc.n_scenarios),
    )
    row = res.iloc[0]
    assert seen == [2]  # the mixture of the two members reached the hook
    assert np.isfinite(row.pinball) and np.isfinite(row.crps) and np.isfinite(row.nll)
    assert 0.5 <= row.coverage80 <= 1.0


def test_auto_trend_is_chosen_once_by_the_first_member(data):
    ens = DPKEnsemble(3, **{**CFG, "trend": "auto", "val_span": 60}).fit(data)
    first, *rest = ens.members_
    assert first.trend_choice_["trend"] in ("piecewise", "linear", "constant")
    for m in rest:  # fitted directly with the first member's choice, no second search
        assert m.config.trend == first.trend_ and getattr(m, "trend_choice_", None) is None
    solo = DPK(**{**CFG, "val_span": 60, "trend": first.trend_, "seed": 1}).fit(data)
    np.testing.assert_array_equal(
        np.asarray(solo.predict(horizon=8).mean()), np.asarray(rest[0].predict(horizon=8).mean())
    )


@pytest.mark.parametrize(
    "settings",
    [
        {},
        dict(calibration="scale"),
        dict(residual_ar=1),
        dict(conformal=True),
        dict(calibration="scale", distribution="studentt"),
        dict(distribution="mse", conformal=True),
    ],
)
def test_forecast_transform_matches_the_fitted_forecast(data, settings):
    # the configuration rule DPKEnsemble checks up front agrees with what predict returns
    m = DPK(**{**CFG, **settings})
    fc = m.fit(data).predict(horizon=5)
    transformed = fc._transformed or fc.residual_calibration is not None
    assert (m.forecast_transform() is not None) == transformed
