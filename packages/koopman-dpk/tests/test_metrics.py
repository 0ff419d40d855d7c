"""Metrics against closed forms, numerical integrals and hand-computed values."""

import numpy as np
import pytest
from koopman_dpk import get_distribution
from koopman_dpk.forecast import Forecast
from koopman_dpk.metrics import (
    coverage,
    crps,
    crps_normal,
    crps_samples,
    crps_student_t,
    interval_score,
    nmb,
    nrmse,
    pinball,
    pit_histogram,
    qcrps,
    score_forecast,
)
from scipy import integrate, stats


def crps_integral(cdf, y, lo, hi):
    left = integrate.quad(lambda x: cdf(x) ** 2, lo, y, limit=200)[0]
    right = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, hi, limit=200)[0]
    return left + right


def test_pinball_hand_computed():
    # y = 1, q = 0.1 -> 0.1 * (1 - 0) = 0.1; q = 0.9 with prediction 3 -> 0.1 * 2 = 0.2
    assert pinball([1.0], [[0.0, 3.0]], [0.1, 0.9]) == pytest.approx((0.1 + 0.2) / 2)


@pytest.mark.parametrize("y", [-2.0, 0.3, 4.0])
def test_crps_normal_and_student_t_closed_forms_match_integrals(y):
    assert crps_normal(y, 0.5, 1.7) == pytest.approx(
        crps_integral(stats.norm(0.5, 1.7).cdf, y, -60, 60), rel=1e-6
    )
    t = stats.t(4.0, 0.5, 1.3)
    assert crps_student_t(y, 0.5, 1.3, 4.0) == pytest.approx(
        crps_integral(t.cdf, y, -3000, 3000), rel=1e-4
    )


def test_quantile_rule_discrete_and_sample_crps_agree_with_integrals():
    sk = get_distribution("skewnormal")
    p = {"xi": np.array([[0.0]]), "omega": np.array([[1.5]]), "alpha": np.array([[4.0]])}
    fc = Forecast(sk, p)
    ref = crps_integral(stats.skewnorm(4.0, 0, 1.5).cdf, 0.7, -30, 30)
    assert float(crps(fc, [0.7])[0, 0]) == pytest.approx(ref, rel=2e-3)
    po = Forecast(get_distribution("poisson"), {"rate": np.array([3.2])})
    ref_pois = sum((stats.poisson(3.2).cdf(k) - (k >= 2)) ** 2 for k in range(60))
    assert float(crps(po, [2.0])[0, 0]) == pytest.approx(ref_pois, rel=1e-9)
    draws = np.random.default_rng(0).normal(0.5, 1.7, 20_000)
    assert float(crps_samples(0.3, draws)) == pytest.approx(
        float(crps_normal(0.3, 0.5, 1.7)), rel=0.02
    )


def test_qcrps_of_exact_quantiles_approximates_crps():
    levels = np.arange(1, 100) / 100
    q = stats.norm(0, 1).ppf(levels)[None]
    assert qcrps([0.2], q) == pytest.approx(float(crps_normal(0.2, 0, 1)), rel=0.03)


def test_coverage_interval_score_nmb_nrmse():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    assert coverage(y, [0, 0, 0, 0], [1, 1, 1, 1]) == 0.5
    # width 1 everywhere; misses: y=2 by 1, y=3 by 2 -> (2/0.2) * 3 / 4 extra
    assert interval_score(y, np.zeros(4), np.ones(4), 0.2) == pytest.approx(1 + 10 * 3 / 4)
    assert nmb([1, 1], [2, 2]) == 1.0
    assert nrmse(np.arange(101.0), np.arange(101.0)) == 0.0


def test_pit_histogram_of_a_calibrated_forecast_is_flat():
    rng = np.random.default_rng(1)
    mu = rng.normal(size=20_000)
    fc = Forecast(get_distribution("normal"), {"mu": mu, "sigma": np.ones_like(mu)})
    y = mu + rng.normal(size=mu.size)
    dens, edges = pit_histogram(fc.pit(y))
    assert len(dens) == 10 and np.allclose(dens, 1, atol=0.06)
    s = score_forecast(fc, y, ["coverage80", "pinball", "crps", "nll", "rmse"])
    assert s["coverage80"] == pytest.approx(0.8, abs=0.01)
    assert s["nll"] == pytest.approx(0.5 * np.log(2 * np.pi) + 0.5, abs=0.02)
