"""The FFT loss-surface search: exactness against direct evaluation, period mapping, recovery."""

import math

import numpy as np
import pytest
from koopman_dpk import DPK
from koopman_dpk.freqsearch import (
    find_periods,
    fourier_coefficients,
    grid_step,
    loss_surface_fft,
    loss_surface_ndft,
    phase_grid,
    search_slot,
)


def linear_decoder_losses(y, amp, sample_num):
    """Per-point squared error of y against amp * cos(phi) at the S sampled phases."""
    phases = phase_grid(sample_num)
    return (y[:, None] - amp * np.cos(phases)[None, :]) ** 2


def direct_loss(y, tau, amp, omega):
    return float(np.sum((y - amp * np.cos(omega * tau)) ** 2))


def test_fft_surface_equals_direct_evaluation_for_band_limited_loss():
    rng = np.random.default_rng(1)
    tau = np.arange(300.0)
    y = np.cos(2 * np.pi * tau / 17) + rng.normal(size=tau.size)
    L = linear_decoder_losses(y, 1.3, 6)  # degree-2 trig polynomial in phase: S=6 is exact
    omegas, E, delta, N = loss_surface_fft(fourier_coefficients(L), tau)
    pick = np.linspace(0, len(omegas) - 1, 40).astype(int)
    direct = np.array([direct_loss(y, tau, 1.3, w) for w in omegas[pick]])
    np.testing.assert_allclose(E[pick], direct, rtol=1e-6)
    # the mapping: omega_k = 2 pi k / (N delta), so period = N delta / k
    assert np.isclose(2 * np.pi / omegas[9], N * delta / 10)


def test_ndft_equals_direct_on_irregular_float_times():
    rng = np.random.default_rng(2)
    tau = np.sort(rng.uniform(0, 200, 150))
    y = np.cos(2 * np.pi * tau / 11) + 0.5 * rng.normal(size=tau.size)
    coeffs = fourier_coefficients(linear_decoder_losses(y, 0.9, 8))
    omegas = np.linspace(0.05, 2.5, 57)
    direct = np.array([direct_loss(y, tau, 0.9, w) for w in omegas])
    np.testing.assert_allclose(loss_surface_ndft(coeffs, tau, omegas), direct, rtol=1e-9)


@pytest.mark.parametrize("period", [17.0, 24.0, 168.0, 7.3])
def test_search_recovers_planted_period_with_unit_noise(period):
    # noise SD equal to the amplitude; target |p_hat - p| / p <= 0.2%
    rng = np.random.default_rng(int(period * 10))
    tau = np.arange(4096.0)
    y = np.cos(2 * np.pi * tau / period) + rng.normal(size=tau.size)
    L = linear_decoder_losses(y, 1.0, 24)
    res = search_slot(L, tau, verify=lambda w: direct_loss(y, tau, 1.0, w))
    assert abs(res.period - period) / period <= 0.002, res.period


def test_period_17_is_not_doubled():
    # the published dpk package maps FFT bins onto linspace(0, 0.5, N) and reports 34 here
    tau = np.arange(2000.0)
    y = np.cos(2 * np.pi * tau / 17)
    res = search_slot(
        linear_decoder_losses(y, 1.0, 24), tau, verify=lambda w: direct_loss(y, tau, 1.0, w)
    )
    assert abs(res.period - 17) < 0.02
    assert abs(res.period - 34) > 10
    assert abs(find_periods(y)[0] - 17) < 0.02


def test_prime_periods_on_irregular_integer_grid():
    # jittered 70% subsample of an integer grid: delta = GCD of the spacings = 1
    rng = np.random.default_rng(3)
    t = np.arange(1500.0)
    y = (
        np.cos(2 * np.pi * t / 29 + 1.0)
        + 0.8 * np.sin(2 * np.pi * t / 13)
        + 0.7 * rng.normal(size=t.size)
    )
    keep = np.sort(rng.choice(t.size, int(0.7 * t.size), replace=False))
    assert grid_step(t[keep]) == 1.0
    for method in ("fft", "ndft"):
        found = sorted(
            find_periods(y[keep], t[keep], n_periods=2, method=method, sample_num=8, max_period=200)
        )
        assert abs(found[0] - 13) / 13 < 0.002 and abs(found[1] - 29) / 29 < 0.002, (method, found)


def test_prime_period_on_continuous_random_times():
    rng = np.random.default_rng(4)
    tau = np.sort(rng.uniform(0, 1500, 900))
    y = np.cos(2 * np.pi * tau / 23) + 0.5 * rng.normal(size=tau.size)
    L = linear_decoder_losses(y, 1.0, 8)
    for method in ("fft", "ndft"):
        res = search_slot(
            L, tau, verify=lambda w: direct_loss(y, tau, 1.0, w), method=method, min_period=2.0
        )
        assert abs(res.period - 23) / 23 < 0.002, (method, res.period)


def test_dpk_search_finds_period_17_end_to_end():
    rng = np.random.default_rng(5)
    t = np.arange(800.0)
    y = 3 + 2 * np.cos(2 * np.pi * t / 17) + 0.5 * rng.normal(size=t.size)
    m = DPK(n_search=1, num_freqs=[1, 0], epochs=25, search_interval=5, search_cutoff=20, seed=0)
    m.fit(y)
    assert abs(m.periods_[0][0] - 17) / 17 < 0.005
    assert m.history_["search_changes"], "the search ran"


def test_search_includes_covariates_and_beats_random_start():
    # the decoder reads a covariate; the search must score the exact training loss with it
    rng = np.random.default_rng(6)
    t = np.arange(1500.0)
    x = rng.normal(size=t.size)
    y = np.cos(2 * np.pi * t / 31) + 1.5 * x + 0.3 * rng.normal(size=t.size)
    m = DPK(n_search=1, num_freqs=[1, 0], epochs=30, search_interval=5, search_cutoff=25, seed=1)
    m.fit(y, covariates=x)
    assert abs(m.periods_[0][0] - 31) / 31 < 0.005
    assert math.isfinite(m.history_["val_loss"][-1])


def test_periodogram_on_a_grid_with_gaps_is_the_zero_filled_fft():
    # hourly grid with two missing points: the periodogram is that of the zero-filled grid
    # (exact, O(N log N)); off-grid (jittered) times still get Lomb-Scargle
    import scipy.fft
    from koopman_dpk.freqsearch import _periodogram, initial_periods
    from scipy import signal

    rng = np.random.default_rng(0)
    tau = np.delete(np.arange(2000.0), [500, 1300])
    r = (np.cos(2 * np.pi * tau / 24) + 0.3 * rng.normal(size=tau.size))[:, None]
    periods, P = _periodogram(r, tau)
    grid = np.zeros(2000)
    grid[tau.astype(int)] = r[:, 0]
    n = scipy.fft.next_fast_len(5 * 2000)
    expected = np.abs(np.fft.rfft(grid, n=n)) ** 2
    np.testing.assert_allclose(P, expected[1 : n // 2], rtol=1e-10)
    np.testing.assert_allclose(periods, n / np.arange(1, n // 2))
    assert abs(initial_periods(r, tau, 1)[0] - 24) / 24 < 0.002
    jit = np.sort(rng.uniform(0, 2000, size=1400))
    rj = np.cos(2 * np.pi * jit / 24)[:, None]
    pj, Pj = _periodogram(rj, jit)
    np.testing.assert_allclose(Pj, signal.lombscargle(jit, rj[:, 0], 2 * np.pi / pj), rtol=1e-8)
