import numpy as np
import pytest
from koopman_anomaly.errors import ConfigError
from koopman_anomaly.null import (
    BootstrapNull,
    EmpiricalNull,
    HACNull,
    autocovariance,
    stationary_bootstrap_index,
)
from koopman_anomaly.synth import ar1_phi
from koopman_anomaly.windows import decision_index, window_stats
from scipy import stats


def test_window_stats_match_naive_loop():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(60, 2))
    e[5:9, 0] = np.nan
    k = 8
    ws = window_stats(e, k, min_coverage=0.5)
    for t in range(60):
        for j in range(2):
            w = e[max(0, t - k + 1) : t + 1, j]
            v = w[np.isfinite(w)]
            if v.size / k < 0.5:
                assert np.isnan(ws.mean[t, j])
            else:
                assert ws.mean[t, j] == pytest.approx(v.mean())
                assert ws.msq[t, j] == pytest.approx((v**2).mean())


def test_low_coverage_window_is_nan_and_decisions_nonoverlapping():
    e = np.ones(20)
    e[10:16] = np.nan
    ws = window_stats(e, 8)  # 0.75 coverage rule
    assert np.isnan(ws.mean[15]) and np.isnan(ws.mean[3])
    assert ws.mean[9] == 1.0
    assert decision_index(100, 10, 50, 8).tolist() == [17, 25, 33, 41, 49]


def test_autocovariance_matches_direct_formula():
    rng = np.random.default_rng(1)
    x = rng.normal(size=500)
    g = autocovariance(x, 3)[:, 0]
    xm = x - x.mean()
    for h in range(4):
        assert g[h] == pytest.approx(np.sum(xm[h:] * xm[: len(x) - h]) / (len(x) - h))


def test_hac_sd_matches_ar1_closed_form():
    rng = np.random.default_rng(2)
    phi, k = 0.6, 48
    x = ar1_phi(rng, (200_000,), phi, 1.0)
    h = np.arange(1, k)
    closed = np.sqrt((1 + 2 * np.sum((1 - h / k) * phi**h)) / k)
    null = HACNull().fit(x, k)
    assert null.sd()[0] == pytest.approx(closed, rel=0.05)


def test_hac_null_is_calibrated_on_ar1():
    rng = np.random.default_rng(3)
    k = 24
    calib = ar1_phi(rng, (20_000,), 0.5, 1.0)
    test = ar1_phi(rng, (240_000,), 0.5, 1.0)
    null = HACNull().fit(calib, k)
    s = window_stats(test, k).mean[k - 1 :: k]
    p = null.pvalue(s, "lower")
    assert np.mean(p <= 0.05) == pytest.approx(0.05, abs=0.012)
    p2 = null.pvalue(s, "both")
    assert np.mean(p2 <= 0.05) == pytest.approx(0.05, abs=0.012)


def test_hac_student_t_option_uses_neff_minus_one_df():
    from scipy import stats

    rng = np.random.default_rng(5)
    k = 48
    calib = ar1_phi(rng, (960,), 0.5, 1.0)  # n_eff = 960 / 48 = 20
    s = np.array([-0.9, -0.3, 0.0, 0.4])
    normal = HACNull().fit(calib, k)
    tnull = HACNull()
    tnull.student_t = True
    tnull.fit(calib, k)
    zs = (s - normal.center_[0]) / normal.sd()[0]
    np.testing.assert_allclose(tnull.pvalue(s, "lower"), stats.t.cdf(zs, 19), rtol=1e-10)
    np.testing.assert_allclose(normal.pvalue(s, "lower"), stats.norm.cdf(zs), rtol=1e-10)
    tail = zs < -1
    assert (tnull.pvalue(s, "lower")[tail] > normal.pvalue(s, "lower")[tail]).all()


def test_empirical_pvalue_finite_sample_formula():
    e = np.arange(10.0)
    null = EmpiricalNull().fit(e, 1)
    # calibration windows are 0..9; s = 2.5 -> #{<=} = 3 -> p = 4/11
    assert null.pvalue(np.array([2.5]), "lower")[0] == pytest.approx(4 / 11)
    assert null.pvalue(np.array([2.5]), "upper")[0] == pytest.approx(8 / 11)
    assert null.pvalue(np.array([-1.0]), "lower")[0] == pytest.approx(1 / 11)


def test_empirical_refuses_unreachable_alpha():
    null = EmpiricalNull().fit(np.random.default_rng(0).normal(size=200), 100)
    with pytest.raises(ConfigError, match="hac"):
        null.check_alpha(0.001)
    with pytest.raises(ConfigError):
        null.check_alpha(0.7)
    with pytest.raises(ConfigError, match="longer than the calibration"):
        HACNull().fit(np.zeros(10), 20)


def test_stationary_bootstrap_blocks_are_contiguous():
    rng = np.random.default_rng(0)
    idx = stationary_bootstrap_index(rng, 1000, 5000, 50.0, 2)
    steps = np.diff(idx, axis=1)
    cont = (steps == 1) | (steps == -999)
    # mean block length ~ 50 -> ~2% of steps are jumps
    assert 0.01 < 1 - cont.mean() < 0.03


def test_bootstrap_null_roughly_uniform_on_iid():
    rng = np.random.default_rng(4)
    calib = rng.normal(size=4000)
    null = BootstrapNull(n_rep=200, seed=1, block_vs_k=0).fit(calib, 10)
    s = window_stats(rng.normal(size=50_000), 10).mean[9::10]
    p = null.pvalue(s, "lower")
    assert stats.kstest(p, "uniform").statistic < 0.05
