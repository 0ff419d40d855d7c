"""Piecewise trend, intercept correction (level_window), scale calibration, min_epochs:
checked against planted ground truth and closed-form quantiles."""

import numpy as np
import pytest
from koopman_dpk import DPK
from koopman_dpk.errors import DPKInputError
from scipy import stats


def _piecewise_series(T=2000, knot=0.7, slope1=2.0, slope2=6.0, noise=0.3, seed=0):
    """y = 3 cos(2 pi t / 24) + a trend (in units of s = t / T) whose slope changes at `knot`."""
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=float)

    def trend(tt):
        s = tt / (T - 1)
        return slope1 * s + (slope2 - slope1) * np.maximum(s - knot, 0.0)

    y = trend(t) + 3 * np.cos(2 * np.pi * t / 24) + noise * rng.normal(size=T)
    return y, trend


def test_piecewise_trend_extrapolates_the_planted_final_slope():
    T = 2000
    y, trend = _piecewise_series(T)
    kw = dict(periods=[24], epochs=40, lr=1e-2, search_cutoff=0, val="none", seed=0)
    pw = DPK(trend="piecewise", changepoint_range=0.9, **kw).fit(y)
    lin = DPK(trend="linear", **kw).fit(y)
    t_future = np.arange(T, T + 400, dtype=float)
    truth = trend(t_future) + 3 * np.cos(2 * np.pi * t_future / 24)
    err_pw = np.abs(np.asarray(pw.predict(horizon=400).mean()) - truth)
    err_lin = np.abs(np.asarray(lin.predict(horizon=400).mean()) - truth)
    # the planted final slope is 6 per span: at 20% ahead the truth is 1.2 above the end level
    assert np.mean(err_pw) < 0.3, np.mean(err_pw)
    assert np.mean(err_pw) < 0.5 * np.mean(err_lin)
    # fitted final slope (per unit s) close to the planted 6
    mu = np.asarray(pw.predict(times=np.array([T - 1.0, T - 1 + 24 * 16])).mean())
    slope = (mu[1] - mu[0]) / (24 * 16 / (T - 1))
    assert abs(slope - 6.0) < 0.6, slope


def test_level_window_puts_the_forecast_back_on_the_recent_level():
    rng = np.random.default_rng(1)
    T = 1500
    t = np.arange(T, dtype=float)
    shift = np.where(t >= 1350, 2.0, 0.0)  # a level shift in the last 10% of training
    y = 10 + 2 * np.cos(2 * np.pi * t / 24) + shift + 0.3 * rng.normal(size=T)
    kw = dict(periods=[24], trend="constant", epochs=40, lr=1e-2, search_cutoff=0, val="none")
    plain = DPK(**kw).fit(y)
    corrected = DPK(level_window=96, **kw).fit(y)
    tf = np.arange(T, T + 240, dtype=float)
    truth = 12 + 2 * np.cos(2 * np.pi * tf / 24)
    bias_plain = np.mean(np.asarray(plain.predict(horizon=240).mean()) - truth)
    bias_corr = np.mean(np.asarray(corrected.predict(horizon=240).mean()) - truth)
    assert bias_plain < -1.0  # the global constant sits near 10.2
    assert abs(bias_corr) < 0.15, bias_corr
    # "auto" = the longest period (24): same idea, noisier window
    auto = DPK(level_window="auto", **kw).fit(y)
    assert abs(np.mean(np.asarray(auto.predict(horizon=240).mean()) - truth)) < 0.3


def test_scale_calibration_makes_the_80pct_interval_nominal_under_heavy_tails():
    # Student-t(3) noise with a Normal head: the fitted sigma is the t3 sd sqrt(3) * 0.5, whose
    # +-1.2816 sigma interval covers P(|t3| < 1.2816 sqrt 3) = 0.887 of new points (closed form).
    rng = np.random.default_rng(2)
    T, H = 8000, 4000
    t = np.arange(T + H, dtype=float)
    y = 5 + 2 * np.cos(2 * np.pi * t / 24) + 0.5 * rng.standard_t(3, size=T + H)
    expected_raw = 1 - 2 * stats.t.sf(1.2816 * np.sqrt(3), 3)
    assert 0.88 < expected_raw < 0.89
    kw = dict(periods=[24], trend="constant", epochs=15, lr=1e-2, search_cutoff=0, seed=0)
    test_t, test_y = t[T:], y[T:]

    def cover(model):
        lo, hi = model.predict(times=test_t).interval(0.8)
        return np.mean((test_y >= np.asarray(lo)) & (test_y <= np.asarray(hi)))

    raw = DPK(**kw).fit(y[:T])
    cal = DPK(calibration="scale", val_span=3000, **kw).fit(y[:T])
    assert cover(raw) > 0.84  # clearly over-covers
    assert abs(cover(cal) - 0.8) < 0.03, cover(cal)  # 3000 validation points: SE ~ 0.01
    # the factor is the closed-form ratio t3 q0.8(|.|) / (sqrt(3) * 1.2816), up to sampling
    s_true = stats.t.ppf(0.9, 3) / (np.sqrt(3) * stats.norm.ppf(0.9))
    assert abs(cal.scale_calibration_[0] - s_true) < 0.1, (cal.scale_calibration_, s_true)


def test_calibration_config_errors_name_the_fix():
    with pytest.raises(DPKInputError, match="validation split"):
        DPK(calibration="scale", val="none")
    with pytest.raises(DPKInputError, match="not both"):
        DPK(calibration="scale", conformal=True)
    with pytest.raises(DPKInputError, match="calibration must be"):
        DPK(calibration="isotonic")
    y = np.cos(2 * np.pi * np.arange(300) / 24) + np.random.default_rng(0).normal(size=300)
    with pytest.raises(DPKInputError, match="val_span"):
        DPK(periods=[24], val_span=200, epochs=2).fit(y)


def test_min_epochs_keeps_early_stopping_from_picking_epoch_0():
    rng = np.random.default_rng(3)
    y = np.cos(2 * np.pi * np.arange(400) / 24) + rng.normal(size=400)
    m = DPK(periods=[24], epochs=60, patience=2, min_epochs=20, search_cutoff=0, seed=0).fit(y)
    assert m.history_["best_epoch"][0] >= 19


def test_calibration_folds_pool_earlier_blocks_from_refitted_models():
    rng = np.random.default_rng(4)
    T = 4000
    t = np.arange(T, dtype=float)
    y = 5 + 2 * np.cos(2 * np.pi * t / 24) + 0.5 * rng.standard_t(3, size=T)
    m = DPK(
        periods=[24],
        trend="constant",
        epochs=10,
        lr=1e-2,
        search_cutoff=0,
        calibration="scale",
        val_span=600,
        calibration_folds=3,
        seed=0,
    ).fit(y)
    assert m.history_["calibration_blocks"] == [3]  # the tail + 2 refitted earlier blocks
    s_true = stats.t.ppf(0.9, 3) / (np.sqrt(3) * stats.norm.ppf(0.9))
    assert abs(m.scale_calibration_[0] - s_true) < 0.12, (m.scale_calibration_, s_true)


def test_calibration_folds_beyond_the_history_are_skipped_with_a_warning():
    # 480 points, blocks of 100: a fold's model (with its own 100-point validation tail) needs
    # more than 200 points before its block, so folds 1 and 2 (380 and 280 points) are fitted
    # and folds 3 and 4 (180 and 80) are not: 3 blocks with the tail
    rng = np.random.default_rng(6)
    y = 5 + 2 * np.cos(2 * np.pi * np.arange(480) / 24) + rng.normal(0, 0.5, 480)
    cfg = dict(periods=[24], trend="constant", epochs=3, search_cutoff=0, seed=0)
    with pytest.warns(UserWarning, match="used 3 of calibration_folds=5 blocks"):
        m = DPK(**cfg, calibration="scale", val_span=100, calibration_folds=5).fit(y)
    assert m.history_["calibration_blocks"] == [3]
    assert np.isfinite(m.scale_calibration_).all()


@pytest.mark.parametrize("dist", ["normal", "studentt"])
def test_scale_calibration_transform_is_exact_and_finite_for_wide_factors(dist):
    rng = np.random.default_rng(5)
    y = 2 + np.cos(2 * np.pi * np.arange(600) / 24) + rng.normal(0, 0.3, 600)
    m = DPK(
        dist,
        periods=[24],
        trend="constant",
        epochs=4,
        search_cutoff=0,
        calibration="scale",
        val_span=150,
        seed=0,
    ).fit(y)
    m.scale_calibration_ = np.array([40.0])  # an extreme factor (a 2-year-ahead co2 block)
    q = np.asarray(m.predict(horizon=48).quantile([0.005, 0.5, 0.995]))
    assert np.all(np.isfinite(q))
    m.scale_calibration_ = None
    fc = m.predict(horizon=48)
    if dist == "normal":  # Phi(Phi^-1(u) / s) on a Normal is exactly sigma -> s sigma
        p = fc.params
        expect = p["mu"] + 40 * p["sigma"] * stats.norm.ppf(0.005)
        np.testing.assert_allclose(q[:, 0], expect, rtol=1e-6)
    else:  # the level fed to the base ppf is Phi(40 Phi^-1(0.005)) (clipped at 1e-15)
        base = np.asarray(fc.quantile(1e-15))
        np.testing.assert_allclose(q[:, 0], base, rtol=1e-4)
    np.testing.assert_allclose(q[:, 1], np.asarray(fc.quantile(0.5)), rtol=1e-6)


def test_holt_level_method_follows_a_recent_local_slope():
    # flat level, then a local slope of 0.004 per step over the last 15% of training (and on):
    # the damped local trend (blocks of 24) keeps rising; the constant mean correction cannot
    rng = np.random.default_rng(6)
    T, H = 2400, 240
    t = np.arange(T + H, dtype=float)
    level = 0.004 * np.maximum(t - 0.85 * T, 0.0)
    y = 10 + 2 * np.cos(2 * np.pi * t / 24) + level + 0.2 * rng.normal(size=T + H)
    kw = dict(
        periods=[24], trend="constant", epochs=30, lr=1e-2, search_cutoff=0, val="none", seed=0
    )
    mean_c = DPK(level_window=24, **kw).fit(y[:T])
    holt = DPK(level_window=24, level_method="holt", **kw).fit(y[:T])
    truth = 10 + 2 * np.cos(2 * np.pi * t[T:] / 24) + level[T:]
    err_mean = np.mean(np.abs(np.asarray(mean_c.predict(times=t[T:]).mean()) - truth))
    err_holt = np.mean(np.abs(np.asarray(holt.predict(times=t[T:]).mean()) - truth))
    assert err_holt < 0.5 * err_mean, (err_holt, err_mean)
    assert 0.8 <= holt.level_trend_.phi[0] <= 0.98
    with pytest.raises(DPKInputError, match="level_window"):
        DPK(level_method="holt")
    with pytest.raises(DPKInputError, match="additive"):
        DPK("poisson", level_method="holt", level_window=24)


def test_damped_trend_recovers_a_planted_holt_forecast():
    from koopman_dpk.leveltrend import block_means, fit_damped_trend

    # a noiseless straight line ending at 32.5 with step 0.5: the fitted final level is the
    # last value and the one-step slope phi * b continues the line
    x = 3.0 + 0.5 * np.arange(60)
    level, slope, phi = fit_damped_trend(x)
    assert abs(level - 32.5) < 0.05, level
    assert abs(phi * slope - 0.5) < 0.05, (phi, slope)
    # block means end at the last time and skip empty blocks
    tau = np.array([0.0, 1, 2, 3, 10, 11])
    r = np.arange(6, dtype=float)[:, None]
    # blocks (11 - tau) // 4: {0, 1, 2, 3} -> block 2, none in block 1, {10, 11} -> block 0
    np.testing.assert_allclose(block_means(tau, r, 4.0)[:, 0], [1.5, 4.5])


def _drifting(T=900, slope=0.01, seed=3):
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=float)
    return np.cos(2 * np.pi * t / 24) + slope * t + rng.normal(0, 0.2, T)


_AUTO = dict(periods=[24], num_freqs=1, epochs=8, search_cutoff=0, seed=0, val_span=150)


def test_auto_trend_scores_each_candidate_out_of_sample_and_refits_the_best():
    y = _drifting()
    m = DPK(trend="auto", trend_candidates=("constant", "linear"), **_AUTO).fit(y)
    choice = m.trend_choice_
    assert choice["trend"] == "linear" and m.trend_ == "linear"  # a 9-unit drift
    assert choice["scores"]["linear"] < choice["scores"]["constant"]
    # each score is the pinball loss of that candidate fitted on the data before the block
    t = np.arange(len(y), dtype=float)
    pre, post = t <= t[-1] - 150, t > t[-1] - 150
    levels = np.arange(1, 10) / 10
    for cand in ("constant", "linear"):
        sub = DPK(trend=cand, **_AUTO).fit(y[pre], times=t[pre])
        q = np.asarray(sub.predict(times=t[post]).quantile(levels)).reshape(post.sum(), -1)
        diff = y[post][:, None] - q
        by_hand = np.mean(np.maximum(levels * diff, (levels - 1) * diff))
        np.testing.assert_allclose(choice["scores"][cand], by_hand, rtol=1e-9)
    # the final model is the chosen trend fitted on all the data
    direct = DPK(trend="linear", **_AUTO).fit(y)
    np.testing.assert_array_equal(
        np.asarray(m.predict(horizon=48).mean()), np.asarray(direct.predict(horizon=48).mean())
    )
    assert m.get_params()["trend"] == "auto"  # the configuration is kept as given
    # shuffled input with sort=True: the same held-out block, the same scores
    perm = np.random.default_rng(0).permutation(len(y))
    shuffled = DPK(trend="auto", trend_candidates=("constant", "linear"), **_AUTO)
    shuffled.fit(y[perm], times=t[perm], sort=True)
    assert shuffled.trend_choice_ == choice


def test_auto_trend_survives_save_and_load(tmp_path):
    m = DPK(trend="auto", trend_candidates=("constant", "piecewise"), **_AUTO).fit(_drifting())
    m.save(tmp_path / "m")
    m2 = DPK.load(tmp_path / "m")
    assert m2.trend_choice_ == m.trend_choice_ and m2.trend_ == m.trend_
    np.testing.assert_array_equal(
        np.asarray(m.predict(horizon=48).quantile([0.1, 0.9])),
        np.asarray(m2.predict(horizon=48).quantile([0.1, 0.9])),
    )


def test_auto_trend_bad_input_names_the_fix():
    with pytest.raises(DPKInputError, match="trend_candidates"):
        DPK(trend="auto", trend_candidates=("linear", "cubic"))
    with pytest.raises(DPKInputError, match="trend must be one of"):
        DPK(trend="spline")
    with pytest.raises(DPKInputError, match="val_span"):
        DPK(trend="auto", **{**_AUTO, "val_span": 600}).fit(_drifting())


def test_auto_trend_keeps_a_cycle_seen_less_than_once_out_of_the_trend():
    # 85% of one 1000-step cycle (amplitude 3) plus a daily pattern: a piecewise trend absorbs
    # the long cycle and extrapolates its last slope; held-out data show that constant wins
    rng = np.random.default_rng(0)
    t = np.arange(1100, dtype=float)

    def truth(t):
        return 3 * np.sin(2 * np.pi * t / 1000) + np.cos(2 * np.pi * t / 24)

    y = truth(t) + rng.normal(0, 0.1, len(t))
    tr, te = t < 850, t >= 850
    kw = dict(periods=[24, 1000], allow_single_cycle=True, num_freqs=2, epochs=40)
    kw.update(search_cutoff=0, seed=0, val_span=120, trend_candidates=("piecewise", "constant"))
    mae = {}
    for trend in ("piecewise", "auto"):
        m = DPK(trend=trend, **kw).fit(y[tr], times=t[tr])
        mu = np.asarray(m.predict(times=t[te]).mean()).ravel()
        mae[trend] = float(np.abs(mu - truth(t[te])).mean())
    assert m.trend_ == "constant"
    assert mae["piecewise"] > 1.0 and mae["auto"] < 0.3, mae
