"""Each NLL equals scipy.stats' logpdf/logpmf; quantiles invert the CDF; moments and samples agree."""

import numpy as np
import pytest
import torch
from koopman_dpk import get_distribution
from koopman_dpk.distributions.base import inverse_softplus
from koopman_dpk.errors import DPKInputError
from koopman_dpk.forecast import Forecast
from scipy import stats

RNG = np.random.default_rng(0)
N = 200


def case(name):
    """(params, y, scipy frozen distribution) at random valid parameters."""
    if name == "normal":
        p = {"mu": RNG.normal(size=N), "sigma": RNG.uniform(0.2, 3, N)}
        return p, RNG.normal(size=N) * 3, stats.norm(p["mu"], p["sigma"])
    if name == "skewnormal":
        p = {
            "xi": RNG.normal(size=N),
            "omega": RNG.uniform(0.2, 3, N),
            "alpha": RNG.uniform(-9, 9, N),
        }
        return p, RNG.normal(size=N) * 3, stats.skewnorm(p["alpha"], p["xi"], p["omega"])
    if name == "studentt":
        p = {"mu": RNG.normal(size=N), "s": RNG.uniform(0.2, 3, N), "nu": RNG.uniform(2.1, 30, N)}
        return p, RNG.normal(size=N) * 3, stats.t(p["nu"], p["mu"], p["s"])
    if name == "gamma":
        p = {"mean": RNG.uniform(0.5, 5, N), "shape": RNG.uniform(0.5, 10, N)}
        return p, RNG.uniform(0.05, 10, N), stats.gamma(p["shape"], scale=p["mean"] / p["shape"])
    if name == "poisson":
        p = {"rate": RNG.uniform(0.3, 20, N)}
        return p, RNG.integers(0, 30, N).astype(float), stats.poisson(p["rate"])
    if name == "negbin":
        p = {"mean": RNG.uniform(0.3, 20, N), "dispersion": RNG.uniform(0.3, 15, N)}
        r = p["dispersion"]
        return p, RNG.integers(0, 40, N).astype(float), stats.nbinom(r, r / (r + p["mean"]))
    raise KeyError(name)


NAMES = ["normal", "skewnormal", "studentt", "gamma", "poisson", "negbin"]


@pytest.mark.parametrize("name", NAMES)
def test_torch_nll_equals_scipy(name):
    dist = get_distribution(name)
    p, y, ref = case(name)
    tp = {k: torch.tensor(v, dtype=torch.float64) for k, v in p.items()}
    nll = dist.nll_torch(tp, torch.tensor(y, dtype=torch.float64)).numpy()
    expected = -(ref.logpmf(y) if dist.discrete else ref.logpdf(y))
    np.testing.assert_allclose(nll, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dist.nll(p, y), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_link_round_trip_gives_the_same_nll(name):
    # raw values -> link -> NLL equals scipy at the linked parameters
    dist = get_distribution(name)
    raw = [torch.tensor(RNG.normal(size=N)) for _ in dist.param_names]
    params = dist.link(raw)
    p = {k: v.numpy() for k, v in params.items()}
    _, y, _ = case(name)
    np.testing.assert_allclose(
        dist.nll_torch(params, torch.tensor(y)).numpy(), dist.nll(p, y), rtol=1e-8, atol=1e-8
    )


def test_skewnormal_far_tail_is_finite_and_exact():
    dist = get_distribution("skewnormal")
    p = {"xi": np.zeros(3), "omega": np.ones(3), "alpha": np.array([9.0, 9.0, 5.0])}
    y = np.array([-8.0, -20.0, -40.0])  # alpha * z far below -7
    tp = {k: torch.tensor(v) for k, v in p.items()}
    nll = dist.nll_torch(tp, torch.tensor(y)).numpy()
    assert np.all(np.isfinite(nll))
    np.testing.assert_allclose(nll, -stats.skewnorm(p["alpha"]).logpdf(y), rtol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_quantiles_invert_the_cdf(name):
    dist = get_distribution(name)
    p, _, ref = case(name)
    for q in (0.01, 0.1, 0.37, 0.5, 0.9, 0.99):
        x = dist.ppf(p, np.full(N, q))
        if dist.discrete:  # smallest k with F(k) >= q
            assert np.all(dist.cdf(p, x) >= q - 1e-12)
            assert np.all(dist.cdf(p, x - 1) < q)
        else:
            np.testing.assert_allclose(dist.cdf(p, x), q, atol=1e-7)
        np.testing.assert_allclose(dist.cdf(p, x), ref.cdf(x), atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_mean_var_and_samples_agree_with_scipy(name):
    dist = get_distribution(name)
    p, _, ref = case(name)
    np.testing.assert_allclose(dist.mean(p), ref.mean(), rtol=1e-8)
    np.testing.assert_allclose(dist.var(p), ref.var(), rtol=1e-8)
    one = {k: v[:1] for k, v in p.items()}
    draws = dist.sample(one, 40_000, np.random.default_rng(1))[:, 0]
    # two-sample KS against scipy's own sampler
    ref_draws = ref.rvs(size=(40_000, N), random_state=2)[:, 0]
    assert stats.ks_2samp(draws, ref_draws).pvalue > 1e-3


def test_forecast_nll_in_original_units_includes_the_jacobian():
    dist = get_distribution("normal")
    p = dist.unscale(
        {"mu": np.array([[0.5]]), "sigma": np.array([[2.0]])}, np.array([10.0]), np.array([3.0])
    )
    fc = Forecast(dist, p)
    np.testing.assert_allclose(fc.nll([12.0]), -stats.norm(11.5, 6.0).logpdf(12.0))


def test_discrete_pit_is_randomised_and_uniform():
    dist = get_distribution("poisson")
    rate = np.full(20_000, 2.5)
    y = np.random.default_rng(3).poisson(rate).astype(float)
    u = np.asarray(Forecast(dist, {"rate": rate}).pit(y, seed=4))
    hist, _ = np.histogram(u, bins=10, range=(0, 1))
    assert stats.chisquare(hist).pvalue > 1e-3


def test_mixture_quantile_inverts_mixture_cdf():
    dist = get_distribution("normal")
    params = {"mu": np.array([[[0.0]], [[4.0]]]), "sigma": np.array([[[1.0]], [[0.5]]])}
    fc = Forecast(dist, params)
    for q in (0.1, 0.5, 0.8):
        x = float(np.asarray(fc.quantile(q))[0])
        mix = 0.5 * stats.norm(0, 1).cdf(x) + 0.5 * stats.norm(4, 0.5).cdf(x)
        assert abs(mix - q) < 1e-8
    np.testing.assert_allclose(np.asarray(fc.mean()), 2.0)
    np.testing.assert_allclose(np.asarray(fc.var()), 0.5 * (1 + 0.25) + 4.0)


def test_bad_levels_and_unknown_distribution():
    fc = Forecast(get_distribution("normal"), {"mu": np.zeros(3), "sigma": np.ones(3)})
    with pytest.raises(DPKInputError, match="strictly in"):
        fc.quantile(1.2)
    with pytest.raises(DPKInputError, match="choose one of"):
        get_distribution("cauchy")
    with pytest.raises(DPKInputError, match="conformal"):
        Forecast(get_distribution("mse"), {"mu": np.zeros(3)}).quantile(0.5)


def test_inverse_softplus():
    x = np.array([1e-3, 0.5, 3.0, 50.0])
    np.testing.assert_allclose(
        torch.nn.functional.softplus(torch.tensor(inverse_softplus(x))).numpy() + 1e-4, x, rtol=1e-9
    )
