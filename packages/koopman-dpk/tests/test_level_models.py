"""Harmonic snapping, detrended period initialisation, and the exponential-smoothing level models
(`level_method="holt"|"ets"|"comb"`): checked against hand-computed values, closed-form forecast
variances and simulated data-generating processes."""

import numpy as np
import pytest
from koopman_dpk import DPK
from koopman_dpk.errors import DPKInputError
from koopman_dpk.leveltrend import (
    CombinedTrend,
    DampedTrend,
    fit_block_trend,
    fit_smoothing,
    select_smoothing,
)
from koopman_dpk.model import snap_to_harmonics


def test_snap_to_harmonics_by_hand():
    out, snapped = snap_to_harmonics([83.44, 11.99, 50.0, 168.9], [24.0, 168.0], 0.01)
    # 83.44 is 0.67% from 168/2; 11.99 is 0.08% from 24/2; 50 is no harmonic (168/3 = 56,
    # 24/... no); 168.9 is the pinned period itself (k = 1 is not a harmonic): left alone
    assert out == [84.0, 12.0, 50.0, 168.9]
    assert snapped == [True, True, False, False]
    assert snap_to_harmonics([83.0], [168.0], 0.01) == ([83.0], [False])  # 1.2% away


def _weekly(T, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=float)
    y = (
        10
        + 3 * np.cos(2 * np.pi * t / 24)
        + 2 * np.cos(2 * np.pi * t / 168)
        + 1.5 * np.sin(2 * np.pi * t / 84)  # the weekly pattern's second harmonic
        + 0.3 * rng.normal(size=T)
    )
    return t, y


def test_found_harmonics_are_snapped_and_the_forecast_stays_periodic():
    # 1,226 points: the periodogram grid (periods 1226/k) has no bin at 84 h
    t, y = _weekly(7 * 168 + 50)
    m = DPK(
        periods=[24, 168], num_freqs=3, trend="constant", epochs=15, search_cutoff=0, seed=0
    ).fit(y)
    assert m.periods_[0][2] == 84.0, m.periods_
    assert bool(m.net_.blocks[0].pinned[2])  # snapped slots are pinned (no omega drift)
    tau = np.arange(len(y), len(y) + 168, dtype=float)
    a = np.asarray(m.predict(times=tau).mean())
    b = np.asarray(m.predict(times=tau + 2 * 168).mean())  # two weeks later
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_trend_does_not_leak_into_the_found_period():
    # a steep quadratic trend plus periods 50 (pinned) and 13 (to be found); without
    # detrending, the trend's low-frequency power is "found" as a period of half the span
    rng = np.random.default_rng(1)
    T = 3000
    t = np.arange(T, dtype=float)
    s = t / T
    y = 40 * s + 30 * s**2 + np.cos(2 * np.pi * t / 50) + np.cos(2 * np.pi * t / 13)
    y += 0.2 * rng.normal(size=T)
    m = DPK(periods=[50], num_freqs=2, trend="quadratic", epochs=1, search_cutoff=0).fit(y)
    assert abs(m.periods_[0][1] - 13) / 13 < 0.02, m.periods_
    # "auto" level window: the longest *pinned* period
    m2 = DPK(
        periods=[50],
        num_freqs=2,
        trend="quadratic",
        epochs=1,
        search_cutoff=0,
        level_window="auto",
    ).fit(y)
    assert m2._level_window_tau() == pytest.approx(50.0)


def test_level_variance_matches_the_closed_form():
    # sigma^2 * sum_{j=1}^{h-1} c_j^2, with c_j = alpha + beta * phi_j (Hyndman et al. class 1)
    def trend(kind, alpha, beta, phi):
        return DampedTrend(
            level=[0.0],
            slope=[0.0],
            phi=[phi],
            end=0.0,
            block=1.0,
            kind=[kind],
            alpha=[alpha],
            beta=[beta],
            sigma2=[2.0],
        )

    tau = np.array([0.5, 1.0, 2.5])  # h = ceil(lead) = 1, 1, 3
    ann = trend("ANN", 0.5, 0.0, 1.0).variance(tau)[:, 0]
    np.testing.assert_allclose(ann, [0.0, 0.0, 2.0 * (0.25 + 0.25)])
    aan = trend("AAN", 0.5, 0.1, 1.0).variance(tau)[:, 0]
    np.testing.assert_allclose(aan, [0.0, 0.0, 2.0 * (0.6**2 + 0.7**2)])
    aadn = trend("AAdN", 0.5, 0.1, 0.9).variance(tau)[:, 0]
    c1, c2 = 0.5 + 0.1 * 0.9, 0.5 + 0.1 * (0.9 + 0.81)
    np.testing.assert_allclose(aadn, [0.0, 0.0, 2.0 * (c1**2 + c2**2)])


def test_smoothing_recovers_a_simulated_local_level():
    # y_t = l_{t-1} + e_t, l_t = l_{t-1} + alpha e_t with alpha = 0.3: the ETS(A,N,N) process
    rng = np.random.default_rng(2)
    alpha, n = 0.3, 3000
    e = rng.normal(size=n)
    level, ys = 5.0, []
    for v in e:
        ys.append(level + v)
        level += alpha * v
    fit = fit_smoothing(np.array(ys), "ANN")
    assert abs(fit.alpha - alpha) < 0.05, fit.alpha
    assert abs(fit.sse / fit.n - 1.0) < 0.1
    assert abs(fit.level - level) < 0.2
    assert select_smoothing(np.array(ys)).kind == "ANN"


def test_smoothing_selects_a_trend_model_for_a_trending_series():
    rng = np.random.default_rng(3)
    x = 0.5 * np.arange(200) + rng.normal(size=200)
    assert select_smoothing(x).kind in ("AAN", "AAdN")
    flat = rng.normal(size=200)
    assert select_smoothing(flat).kind == "ANN"


def test_ets_level_widens_the_forecast_with_lead():
    # a periodic signal on a random-walk level: the level forecast's variance grows with lead
    rng = np.random.default_rng(4)
    T, H = 24 * 60, 24 * 20
    t = np.arange(T, dtype=float)
    walk = np.cumsum(0.05 * rng.normal(size=T))
    y = 3 * np.cos(2 * np.pi * t / 24) + walk + 0.2 * rng.normal(size=T)
    kw = dict(periods=[24], trend="constant", epochs=10, search_cutoff=0, val="none", seed=0)
    m = DPK(level_method="ets", level_window=24, **kw).fit(y)
    flat = DPK(level_method="ets", level_window=24, level_uncertainty=False, **kw).fit(y)
    sd = np.asarray(m.predict(horizon=H).std())
    sd_flat = np.asarray(flat.predict(horizon=H).std())
    first, last = slice(0, 24), slice(H - 24, H)
    assert sd[last].mean() > 1.3 * sd[first].mean()
    np.testing.assert_allclose(sd_flat[last].mean(), sd_flat[first].mean(), rtol=0.05)
    # the added variance is exactly the level model's closed form
    tau = np.arange(T, T + H, dtype=float)
    v = m.level_trend_.variance(tau)[:, 0] * m.scale_[0] ** 2
    np.testing.assert_allclose(sd**2, sd_flat**2 + v, rtol=1e-4)


def test_deseasonalized_level_target_follows_a_recent_slope_change():
    # slope 4 per span for 85% of training, then flat. With level_target="deseasonalized" the
    # smoothing model reads y minus the network's periodic part (trend included) and its
    # forecast replaces the trend ahead; in-sample the forecast is the network's own
    from koopman_dpk.leveltrend import fit_block_trend

    rng = np.random.default_rng(7)
    T, H = 2400, 240
    t = np.arange(T + H, dtype=float)
    level = 4 * np.minimum(t, 0.85 * T) / T
    y = level + 2 * np.cos(2 * np.pi * t / 24) + 0.1 * rng.normal(size=T + H)
    kw = dict(periods=[24], trend="linear", epochs=30, lr=1e-2, search_cutoff=0, val="none")
    m = DPK(level_method="ets", level_window=24, level_target="deseasonalized", **kw).fit(y[:T])
    assert m.level_trend_.replaces_trend
    truth = level[T:] + 2 * np.cos(2 * np.pi * t[T:] / 24)
    mu = np.asarray(m.predict(times=t[T:]).mean())
    assert np.mean(np.abs(mu - truth)) < 0.1
    # recomputed by hand: periodic part = network output minus its trend; deseasonalised
    # series = y - periodic part; ETS on its daily block means; forecast = periodic + ETS
    lt = m.level_trend_
    m.level_trend_ = None
    tau_all = t[: T + H]
    net_mu = np.asarray(m.predict(times=tau_all).mean())  # network + trend, no level model
    trend = m._trend_values(tau_all)[:, 0] * m.scale_[0]
    periodic = net_mu - trend
    deseason = (y[:T] - periodic[:T] - m.center_[0]) / m.scale_[0]
    ref = fit_block_trend(t[:T], deseason[:, None], 24.0, "ets")
    expect = periodic[T:] + m.center_[0] + ref.correction(t[T:])[:, 0] * m.scale_[0]
    np.testing.assert_allclose(mu, expect, rtol=1e-5, atol=1e-4)
    # in-sample the trend is kept: equal to the same net without any level model
    m.level_trend_ = lt
    np.testing.assert_allclose(
        np.asarray(m.predict(times=t[T - 48 : T]).mean()), net_mu[T - 48 : T], rtol=1e-6
    )
    with pytest.raises(Exception, match="deseasonalized"):
        DPK(level_target="deseasonalized", level_window=24)


def test_auto_level_model_is_chosen_on_the_validation_tail():
    # a level shift 3 days before the end of training: "none" (the global fit) misses it on
    # the validation tail, a local level model follows it; the choice and its scores are
    # recorded, and a periodic series without a shift keeps the global model competitive
    rng = np.random.default_rng(8)
    T = 24 * 40
    t = np.arange(T, dtype=float)
    shift = np.where(t >= T - 24 * 6, 3.0, 0.0)
    y = 2 * np.cos(2 * np.pi * t / 24) + shift + 0.2 * rng.normal(size=T)
    m = DPK(
        periods=[24],
        trend="constant",
        epochs=20,
        search_cutoff=0,
        val_span=24 * 3,
        level_method="auto",
        seed=0,
    ).fit(y)
    choice = m.level_choice_
    assert set(choice["scores"]) == {"none", "mean@24", "ets@1", "ets@24"}
    assert choice["method"] != "none"
    assert choice["scores"]["none"] > 2 * min(choice["scores"].values())
    assert choice["score"] == min(choice["scores"].values())
    # the final forecast is on the new level: its mean over whole days is the new level 3
    ahead = np.arange(T, T + 48, dtype=float)
    assert abs(np.asarray(m.predict(times=ahead).mean()).mean() - 3.0) < 0.3
    with pytest.raises(Exception, match="validation"):
        DPK(level_method="auto", val="none")


def test_auto_level_choice_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(9)
    t = np.arange(24 * 20, dtype=float)
    y = np.cos(2 * np.pi * t / 24) + 0.1 * rng.normal(size=len(t))
    m = DPK(periods=[24], epochs=3, search_cutoff=0, val_span=48, level_method="auto").fit(y)
    m.save(tmp_path / "m")
    m2 = DPK.load(tmp_path / "m")
    assert m2.level_choice_ == m.level_choice_
    np.testing.assert_allclose(
        np.asarray(m2.predict(horizon=48).mean()), np.asarray(m.predict(horizon=48).mean())
    )


def test_filtered_one_step_predictions_equal_the_recursions():
    # p + l0 u + b0 v (one IIR filter pass) must equal the state recursions run by hand
    from koopman_dpk.leveltrend import _one_step_parts, _smooth

    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(size=300)) + 0.1 * np.arange(300)
    for alpha, beta, phi in [(0.3, 0.05, 1.0), (0.7, 0.2, 0.9), (0.1, 0.0, 1.0)]:
        l0, b0 = 1.5, -0.2
        p, u, v = _one_step_parts(x, alpha, beta, phi)
        pred = p + l0 * u + b0 * v
        level, slope, by_hand = l0, b0, []
        for val in x:
            by_hand.append(level + phi * slope)
            err = val - by_hand[-1]
            level, slope = by_hand[-1] + alpha * err, phi * slope + beta * err
        np.testing.assert_allclose(pred, by_hand, rtol=1e-9, atol=1e-9)
        sse = _smooth(x, alpha, beta, phi, l0, b0)[0]
        assert sse == pytest.approx(float(np.sum((x - pred) ** 2)), rel=1e-9)


def test_initial_states_are_estimated():
    # a global drift with a local level (beta ~ 0): the slope must come from b_0, not from
    # the first ten points; the forecast slope equals the true drift
    rng = np.random.default_rng(6)
    n, drift = 800, 0.02
    level, xs = 300.0, []
    for _ in range(n):
        e = 0.3 * rng.normal()
        xs.append(level + drift + e)
        level += drift + 0.4 * e
    fit = fit_smoothing(np.array(xs), "AAN")
    assert abs(fit.slope - drift) < 0.005, fit.slope
    assert abs(fit.alpha - 0.4) < 0.08, fit.alpha
    assert select_smoothing(np.array(xs)).kind in ("AAN", "AAdN")


def _three_quarter_cycle():
    rng = np.random.default_rng(0)
    t = np.arange(0, 3000, dtype=float)  # 3/4 of a cycle of period 4000

    def truth(tt):
        return 5 + 3 * np.sin(2 * np.pi * tt / 4000 + 0.3) + 0.5 * np.cos(2 * np.pi * tt / 24)

    return t, truth(t) + 0.1 * rng.normal(size=t.size), truth


def test_linear_periods_extrapolate_a_cycle_seen_less_than_once(tmp_path):
    # the unseen quarter of the long cycle: linear Fourier terms (Prophet-style) continue the
    # sinusoid; the error must be a small fraction of its amplitude (3)
    t, y, truth = _three_quarter_cycle()
    m = DPK(
        periods=[24],
        linear_periods=[4000],
        linear_order=1,
        trend="constant",
        epochs=30,
        search_cutoff=0,
        seed=0,
    ).fit(y)
    assert m.linear_periods_ == pytest.approx([4000.0])
    tt = np.arange(3000, 4000, dtype=float)
    mu = np.asarray(m.predict(times=tt).mean()).ravel()
    assert np.abs(mu - truth(tt)).mean() < 0.05
    m.save(tmp_path / "m")
    back = DPK.load(tmp_path / "m")
    np.testing.assert_allclose(np.asarray(back.predict(times=tt).mean()).ravel(), mu, atol=1e-6)
    assert back.linear_periods_ == pytest.approx([4000.0])


def test_linear_periods_bad_input():
    t, y, _ = _three_quarter_cycle()
    with pytest.raises(DPKInputError, match="both periods and linear_periods"):
        DPK(periods=[24], linear_periods=[24], epochs=1).fit(y)
    with pytest.raises(DPKInputError, match="linear period 2 is <= 2 steps"):
        DPK(linear_periods=[2], epochs=1).fit(y)
    with pytest.raises(DPKInputError, match="linear_order must be an integer >= 1"):
        DPK(linear_periods=[4000], linear_order=0, epochs=1)


def test_comb_level_forecast_is_the_average_of_ses_holt_and_damped_by_hand():
    # Comb S-H-D: the three forecasts l + 0, l + k b and l + (phi + ... + phi^k) b, averaged
    rng = np.random.default_rng(5)
    t = np.arange(240, dtype=float)
    resid = (0.02 * t + np.cumsum(rng.normal(0, 0.05, 240)))[:, None]  # block = 4 steps
    comb = fit_block_trend(t, resid, 4.0, "comb")
    assert isinstance(comb, CombinedTrend)
    assert [m.kind for m in comb.members] == [["ANN"], ["AAN"], ["AAdN"]]
    means = resid[:, 0].reshape(-1, 4).mean(axis=1)
    fits = {k: fit_smoothing(means, k) for k in ("ANN", "AAN", "AAdN")}
    for k in (1, 3, 10):
        tau = np.array([t[-1] + 4.0 * k])
        damped = sum(fits["AAdN"].phi ** j for j in range(1, k + 1))
        by_hand = (
            fits["ANN"].level
            + (fits["AAN"].level + k * fits["AAN"].slope)
            + (fits["AAdN"].level + damped * fits["AAdN"].slope)
        ) / 3
        np.testing.assert_allclose(comb.correction(tau)[0, 0], by_hand, rtol=1e-9)
    # the added variance is that of the average of fully correlated member errors: the
    # covariance sum (1/9) sum_ij sd_i sd_j, its upper bound
    tau = t[-1] + 4.0 * np.arange(1, 12)
    sd = np.sqrt([m.variance(tau)[:, 0] for m in comb.members])
    full_cov = sum(sd[i] * sd[j] for i in range(3) for j in range(3)) / 9
    np.testing.assert_allclose(comb.variance(tau)[:, 0], full_cov)
    assert np.all(comb.variance(tau)[:, 0] <= np.mean(sd**2, axis=0) + 1e-15)
    assert np.all(np.diff(comb.variance(tau)[:, 0]) >= 0)


def test_comb_caps_a_runaway_slope_that_aicc_selects():
    # a smooth curve that flattens: in-sample one-step errors favour a reactive trend
    # (beta near alpha), whose extrapolation keeps climbing; the combination does not
    t = np.arange(400, dtype=float)
    resid = (5 * np.tanh((t - 200) / 80))[:, None]
    truth_ahead = 5.0  # the curve's limit
    ets = fit_block_trend(t, resid, 1.0, "ets")
    comb = fit_block_trend(t, resid, 1.0, "comb")
    tau = np.array([t[-1] + 300.0])
    err_ets = abs(ets.correction(tau)[0, 0] - truth_ahead)
    err_comb = abs(comb.correction(tau)[0, 0] - truth_ahead)
    assert err_comb < err_ets


def test_comb_level_model_is_fitted_and_needs_a_window():
    # the save/load round trip is in test_io.py
    rng = np.random.default_rng(2)
    t = np.arange(300, dtype=float)
    y = np.cos(2 * np.pi * t / 24) + 0.003 * t + rng.normal(0, 0.2, 300)
    m = DPK(periods=[24], level_window=24, level_method="comb", epochs=3, search_cutoff=0).fit(y)
    assert isinstance(m.level_trend_, CombinedTrend)
    assert [k.kind for k in m.level_trend_.members] == [["ANN"], ["AAN"], ["AAdN"]]
    with pytest.raises(DPKInputError, match="level_window"):
        DPK(periods=[24], level_method="comb")


def test_fixed_smoothing_form_is_that_form_fitted_by_hand():
    # level_method="AAN" / "ANN" / "AAdN": one form per column, no AICc choice
    rng = np.random.default_rng(11)
    t = np.arange(200, dtype=float)
    resid = (0.01 * t + np.cumsum(rng.normal(0, 0.05, 200)))[:, None]
    means = resid[:, 0].reshape(-1, 4).mean(axis=1)  # blocks of 4 steps end at t[-1]
    for kind in ("ANN", "AAN", "AAdN"):
        trend = fit_block_trend(t, resid, 4.0, kind)
        assert isinstance(trend, DampedTrend) and trend.kind == [kind]
        f = fit_smoothing(means, kind)
        k = 7
        steps = {"ANN": 0.0, "AAN": k, "AAdN": sum(f.phi**j for j in range(1, k + 1))}[kind]
        expected = f.level + steps * f.slope
        np.testing.assert_allclose(trend.correction(np.array([t[-1] + 4.0 * k]))[0, 0], expected)
    with pytest.raises(ValueError, match="AAdN"):
        fit_block_trend(t, resid, 4.0, "AAM")


def test_deseasonalized_aan_extrapolates_the_slope_the_explicit_trend_replaced():
    # y = 0.01 t + cos(2 pi t / 24) + noise: the network keeps the cycle, and Holt's linear
    # trend on y minus the cycle carries the level and slope ahead (MSTL's structure)
    rng = np.random.default_rng(4)
    t = np.arange(720, dtype=float)
    y = 0.01 * t + np.cos(2 * np.pi * t / 24) + rng.normal(0, 0.1, 720)
    m = DPK(
        periods=[24],
        search_cutoff=0,
        trend="linear",
        level_method="AAN",
        level_window=24,
        level_target="deseasonalized",
        epochs=60,
        seed=0,
    ).fit(y)
    assert m.level_trend_.kind == ["AAN"] and m.level_trend_.replaces_trend
    ahead = np.arange(720, 720 + 24 * 20, dtype=float)
    mu = np.asarray(m.predict(times=ahead).mean()).ravel()
    day_means = mu.reshape(20, 24).mean(axis=1)  # the cycle averages out over a day
    slope_per_day = np.polyfit(np.arange(20), day_means, 1)[0]
    assert slope_per_day == pytest.approx(0.24, rel=0.1)
    assert np.abs(day_means - (0.01 * (ahead.reshape(20, 24).mean(axis=1)))).max() < 0.15


def test_unknown_level_method_names_the_fixed_forms():
    with pytest.raises(DPKInputError, match="'ANN', 'AAN' or 'AAdN'"):
        DPK(periods=[24], level_method="AAM", level_window=24)
