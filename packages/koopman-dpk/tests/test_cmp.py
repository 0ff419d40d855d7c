"""Conway-Maxwell-Poisson head against independent references: scipy's Poisson at nu = 1 and
an mpmath high-precision series for Z at other nu."""

import mpmath
import numpy as np
import pytest
import torch
from koopman_dpk import DPK
from koopman_dpk.distributions import get_distribution
from scipy import stats

D = get_distribution("cmp")


def _mp_logpmf(y: int, mu: float, nu: float) -> float:
    lam = mpmath.mpf(mu) ** nu
    z = mpmath.nsum(lambda j: lam**j / mpmath.factorial(j) ** nu, [0, mpmath.inf])
    return float(mpmath.log(lam**y / mpmath.factorial(y) ** nu / z))


def test_nu_one_is_scipy_poisson():
    rng = np.random.default_rng(0)
    mu = rng.uniform(0.3, 25, 40)
    y = rng.integers(0, 40, 40).astype(float)
    p = {"mu": mu, "nu": np.ones(40)}
    ref = stats.poisson(mu)
    np.testing.assert_allclose(D.logpdf(p, y), ref.logpmf(y), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(D.cdf(p, y), ref.cdf(y), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(D.ppf(p, np.full(40, 0.37)), ref.ppf(0.37))
    nll = D.nll_torch(
        {"mu": torch.tensor(mu), "nu": torch.ones(40, dtype=torch.float64)}, torch.tensor(y)
    )
    np.testing.assert_allclose(nll.numpy(), -ref.logpmf(y), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("mu", "nu"), [(3.0, 2.5), (12.0, 0.4), (0.5, 1.7), (40.0, 3.0)])
def test_nll_equals_high_precision_series(mu, nu):
    ys = [0, 1, 3, int(mu), int(mu) + 7]
    want = np.array([_mp_logpmf(y, mu, nu) for y in ys])
    y = torch.tensor(ys, dtype=torch.float64)
    p = {
        "mu": torch.full((5,), mu, dtype=torch.float64),
        "nu": torch.full((5,), nu, dtype=torch.float64),
    }
    np.testing.assert_allclose(-D.nll_torch(p, y).numpy(), want, rtol=1e-8, atol=1e-10)
    pn = {"mu": np.full(5, mu), "nu": np.full(5, nu)}
    np.testing.assert_allclose(D.logpdf(pn, np.array(ys, float)), want, rtol=1e-8, atol=1e-10)


def test_moments_quantiles_and_samples_are_consistent():
    p = {"mu": np.array([10.0, 10.0]), "nu": np.array([3.0, 0.5])}
    m, v = D.mean(p), D.var(p)
    assert v[0] < m[0] < v[1]  # nu > 1 under-dispersed, nu < 1 over-dispersed
    assert abs(m[0] - (10 + 1 / 6 - 0.5)) < 0.1  # mean ~ mu + 1/(2 nu) - 1/2
    q = np.array([0.05, 0.3, 0.5, 0.9])
    for qi in q:
        k = D.ppf(p, np.full(2, qi))
        assert np.all(D.cdf(p, k) >= qi) and np.all(D.cdf(p, k - 1) < qi)  # inverts the CDF
    draws = D.sample(p, 4000, np.random.default_rng(1))
    np.testing.assert_allclose(draws.mean(0), m, rtol=0.03)
    np.testing.assert_allclose(draws.var(0), v, rtol=0.1)


def test_fit_recovers_under_dispersion():
    rng = np.random.default_rng(2)
    t = np.arange(1500)
    n = 20 + 10 * (np.cos(2 * np.pi * t / 24) > 0)  # binomial counts: var/mean = 1 - p = 0.5
    y = rng.binomial(n, 0.5).astype(float)
    m = DPK("cmp", periods=[24], trend="constant", epochs=25, lr=1e-2, search_cutoff=0, seed=0)
    fc = m.fit(y).predict(horizon=48)
    mean, var = np.asarray(fc.mean()), np.asarray(fc.var())
    np.testing.assert_allclose(np.sort(mean)[[0, -1]], [10, 15], atol=0.8)
    assert np.all(var / mean < 0.75)  # under-dispersed, unlike any Poisson (ratio 1)
