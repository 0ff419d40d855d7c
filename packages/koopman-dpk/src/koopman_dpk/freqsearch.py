"""FFT loss-surface frequency search (Lange, Brunton & Kutz 2021), with the period mapping fixed.

For one frequency slot, everything but its phase is held fixed.  The per-point loss is then a
2*pi-periodic function of the phase, l_t(phi), sampled at S phases phi_s = 2*pi*s/S.  Its Fourier
coefficients a_t[m] (|m| <= M = S/2 - 1) give the total loss at any frequency

    E(omega) = sum_t sum_m a_t[m] exp(i m omega tau_t),

and with integer ticks n_t = round(tau_t / delta) this is one inverse real FFT of the spectrum
G[m * n_t] += a_t[m]:  E(2 pi k / (N delta)) = N * irfft(G, N)[k],  **period = N delta / k**.
(The published dpk package mapped k onto linspace(0, 0.5, N) and so reported twice the period.)

Irregular times use the same gridded FFT with delta = GCD of the spacings (or median/8), or the
exact non-uniform sum (`method="ndft"`).  Cost: S decoder passes plus one FFT of size ~ 2*M*T.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy import signal

from .errors import DPKInputError

MAX_FFT_SIZE = 2**26
CHUNK = 8192


@dataclass
class SearchResult:
    """Outcome of one slot search. `surface_*` hold the loss surface over the period range."""

    omega: float
    period: float
    candidates: list[float] = field(default_factory=list)  # candidate periods
    candidate_losses: list[float] = field(default_factory=list)
    surface_periods: np.ndarray | None = None
    surface_values: np.ndarray | None = None
    method: str = "fft"


def phase_grid(sample_num: int) -> np.ndarray:
    """The S phases 2*pi*s/S at which the per-point loss is sampled."""
    if sample_num < 4:
        raise DPKInputError(f"sample_num must be >= 4 (got {sample_num}); 24 is the default.")
    return 2.0 * np.pi * np.arange(sample_num) / sample_num


def fourier_coefficients(point_losses: np.ndarray) -> np.ndarray:
    """a_t[m] = S^-1 sum_s l_{t,s} exp(-2 pi i m s / S) for m = 0..S/2-1, shape (T, M+1)."""
    S = point_losses.shape[1]
    M = S // 2 - 1
    arg = 2.0 * np.pi * np.outer(np.arange(S), np.arange(M + 1)) / S  # (S, M+1)
    L = np.asarray(point_losses, dtype=float)
    # a real matrix product (BLAS) instead of N tiny FFTs along a strided axis
    return (L @ np.cos(arg) - 1j * (L @ np.sin(arg))) / S


def grid_step(tau: np.ndarray) -> float:
    """delta: the step of a uniform grid, else the GCD of integer spacings, else median spacing / 8."""
    d = np.diff(np.asarray(tau, dtype=float))
    if len(d) == 0:
        return 1.0
    if np.allclose(d, d[0], rtol=1e-9, atol=1e-12):
        return float(d[0])
    dmin = d.min()
    ratio = d / dmin
    if np.allclose(ratio, np.round(ratio), atol=1e-6):
        return float(dmin)
    as_int = np.round(d).astype(np.int64)
    if np.allclose(d, as_int, atol=1e-9) and as_int.min() > 0:
        return float(np.gcd.reduce(as_int))
    return float(np.median(d) / 8.0)


def loss_surface_fft(
    coeffs: np.ndarray, tau: np.ndarray, delta: float | None = None
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """E at omega_k = 2 pi k / (N delta), k = 1..N/2-1. Returns (omegas, E, delta, N)."""
    tau = np.asarray(tau, dtype=float)
    delta = grid_step(tau) if delta is None else float(delta)
    ticks = np.round(tau / delta).astype(np.int64)
    if ticks.min() < 0:
        raise DPKInputError("frequency search needs tau >= 0 (times after the first training time)")
    M = coeffs.shape[1] - 1
    n_max = int(ticks.max())
    N = scipy.fft.next_fast_len(2 * M * n_max + 2, real=True)
    if N % 2:
        N += 1
    if N > MAX_FFT_SIZE:
        raise DPKInputError(f"FFT of size {N} too large; use method='ndft'")
    half = N // 2 + 1
    G = np.zeros(half, dtype=complex)
    const = float(np.sum(coeffs[:, 0].real))
    for m in range(1, M + 1):
        idx = m * ticks
        G.real += np.bincount(idx, weights=coeffs[:, m].real, minlength=half)[:half]
        G.imag += np.bincount(idx, weights=coeffs[:, m].imag, minlength=half)[:half]
    const += 2.0 * G[0].real  # terms with n_t = 0: exp(0) = 1, counted twice (m and -m)
    G[0] = const
    E = N * scipy.fft.irfft(G, N)
    k = np.arange(1, N // 2)
    return 2.0 * np.pi * k / (N * delta), E[1 : N // 2], delta, N


def loss_surface_ndft(coeffs: np.ndarray, tau: np.ndarray, omegas: np.ndarray) -> np.ndarray:
    """Exact E(omega) = sum_t [a_t0 + 2 Re sum_m a_t[m] exp(i m omega tau_t)], in chunks."""
    tau = np.asarray(tau, dtype=float)
    omegas = np.asarray(omegas, dtype=float)
    M = coeffs.shape[1] - 1
    E = np.full(len(omegas), float(np.sum(coeffs[:, 0].real)))
    step = max(1, CHUNK * 64 // max(len(omegas), 1))
    for start in range(0, len(tau), step):
        t = tau[start : start + step]
        a = coeffs[start : start + step]
        base = np.exp(1j * np.outer(t, omegas))  # (t, w)
        power = np.ones_like(base)
        for m in range(1, M + 1):
            power = power * base
            E += 2.0 * np.real(a[:, m] @ power)
    return E


def _refine(verify: Callable[[float], float], omega: float, h: float, steps: int = 12) -> float:
    """Golden-section refinement of verify() on [omega - h, omega + h]; returns the period."""
    g = (math.sqrt(5) - 1) / 2
    a, b = omega - h, omega + h
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = verify(c), verify(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = verify(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = verify(d)
    w = c if fc < fd else d
    return 2 * np.pi / (w if min(fc, fd) <= verify(omega) else omega)


def _local_minima(values: np.ndarray) -> np.ndarray:
    v = values
    inner = np.flatnonzero((v[1:-1] <= v[:-2]) & (v[1:-1] <= v[2:])) + 1
    return inner


def _near(period: float, others: Sequence[float], tol: float = 0.01) -> bool:
    for p in others:
        for target in (p, p / 2.0, p / 3.0):
            if target > 0 and abs(period - target) <= tol * target:
                return True
    return False


def select_candidates(
    periods: np.ndarray,
    values: np.ndarray,
    existing: Sequence[float] = (),
    n: int = 8,
    heuristic: str = "verified",
) -> list[float]:
    """Candidate periods: the n lowest local minima (plus n largest |E - median| for abs_median)."""
    order_idx: list[int] = []
    if heuristic == "anchor":
        return [float(periods[int(np.argmax(np.abs(values - np.median(values))))])]
    mins = _local_minima(values)
    if len(mins) == 0:
        mins = np.arange(len(values))
    order_idx.extend(mins[np.argsort(values[mins])].tolist())
    if heuristic == "abs_median":
        dev = np.abs(values - np.median(values))
        order_idx.extend(np.argsort(-dev)[: 4 * n].tolist())
    chosen: list[float] = []
    for i in order_idx:
        p = float(periods[i])
        if _near(p, existing) or _near(p, chosen, tol=0.01):
            continue
        chosen.append(p)
        if len(chosen) >= (2 * n if heuristic == "abs_median" else n):
            break
    return chosen


def search_slot(
    point_losses: np.ndarray,
    tau: np.ndarray,
    verify: Callable[[float], float] | None = None,
    existing_periods: Sequence[float] = (),
    current_omega: float | None = None,
    heuristic: str = "verified",
    method: str = "auto",
    delta: float | None = None,
    min_period: float | None = None,
    max_period: float | None = None,
    n_candidates: int = 8,
    keep_surface: bool = False,
) -> SearchResult:
    """Best frequency for one slot from its per-point losses at S phases.

    point_losses: (T, S) weighted losses with the slot's phase set to 2*pi*s/S for every point.
    verify: omega -> direct training loss; candidates (and the current omega) are re-scored with
    it under heuristic='verified'/'abs_median'. Without it the lowest surface minimum wins.
    """
    if heuristic not in ("verified", "abs_median", "anchor"):
        raise DPKInputError(
            f"heuristic must be 'verified', 'abs_median' or 'anchor', got {heuristic!r}"
        )
    tau = np.asarray(tau, dtype=float)
    coeffs = fourier_coefficients(np.asarray(point_losses, dtype=float))
    span = float(tau.max() - tau.min())
    d = grid_step(tau) if delta is None else float(delta)
    lo = 2.0 * d if min_period is None else float(min_period)
    hi = span / 2.0 if max_period is None else float(max_period)
    use_ndft = method == "ndft"
    if method == "auto":
        M = coeffs.shape[1] - 1
        use_ndft = 2 * M * (tau.max() / d) + 2 > MAX_FFT_SIZE
    if use_ndft:
        n_w = int(min(50_000, max(1000, 4 * span / lo)))
        omegas = np.linspace(2 * np.pi / hi, 2 * np.pi / lo, n_w)
        E = loss_surface_ndft(coeffs, tau, omegas)
        used = "ndft"
    else:
        omegas, E, _, _ = loss_surface_fft(coeffs, tau, d)
        used = "fft"
    periods = 2.0 * np.pi / omegas
    keep = (periods >= lo) & (periods <= hi)
    periods, E = periods[keep][::-1], E[keep][::-1]  # increasing period
    if len(periods) == 0:
        raise DPKInputError(f"no admissible period in [{lo:g}, {hi:g}]; the series is too short")
    cands = select_candidates(periods, E, existing_periods, n_candidates, heuristic)
    if not cands:
        cands = [float(periods[int(np.argmin(E))])]
    if verify is None or heuristic == "anchor":
        best = cands[0]
        losses: list[float] = []
    else:
        losses = [float(verify(2 * np.pi / p)) for p in cands]
        best_i = int(np.argmin(losses))
        best = cands[best_i]
        if current_omega is not None:
            cur = float(verify(current_omega))
            if not cur > losses[best_i]:  # keep the current slot unless strictly improved
                best = 2 * np.pi / current_omega
    if verify is not None and heuristic != "anchor" and best in cands:
        # polish within one grid cell by golden section on the direct loss
        best = _refine(verify, 2 * np.pi / best, float(abs(omegas[1] - omegas[0])))
    res = SearchResult(2 * np.pi / best, best, cands, losses, method=used)
    if keep_surface:
        res.surface_periods, res.surface_values = periods, E
    return res


# ----------------------------------------------------------------------------- initialisation
def _least_squares_residual(y: np.ndarray, tau: np.ndarray, periods: Sequence[float]) -> np.ndarray:
    cols = [np.ones_like(tau)]
    for p in periods:
        w = 2 * np.pi / p
        cols += [np.cos(w * tau), np.sin(w * tau)]
    X = np.stack(cols, axis=1)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    return y - X @ beta


def _is_uniform(tau: np.ndarray) -> bool:
    d = np.diff(tau)
    return len(d) > 0 and np.allclose(d, d[0], rtol=1e-9, atol=1e-12)


def _periodogram(
    r: np.ndarray, tau: np.ndarray, oversample: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """(periods, power summed over columns): zero-padded rfft on uniform grids; on a grid with
    gaps (at least half its slots filled, e.g. a missing hour or dropped NaNs) the rfft of the
    zero-filled grid; Lomb-Scargle for off-grid times (gridded FFT when T * n_freqs > 1e10)."""
    T = len(tau)
    if _is_uniform(tau):
        step = tau[1] - tau[0]
        n = scipy.fft.next_fast_len(oversample * T)
        P = np.sum(np.abs(np.fft.rfft(r, n=n, axis=0)) ** 2, axis=1)
        k = np.arange(1, n // 2)
        return n * step / k, P[1 : n // 2]
    span = tau[-1] - tau[0]
    lo = 2.0 * float(np.median(np.diff(tau)))
    n_f = int(oversample * span / lo)
    d = grid_step(tau)
    pos = (tau - tau[0]) / d
    filled = T / (pos.max() + 1)  # share of the grid's slots that hold a value
    on_grid = np.allclose(pos, np.round(pos), atol=1e-6) and filled >= 0.5
    if on_grid or T * n_f > 1e10:  # gridded FFT of the (scattered) values, zeros elsewhere
        ticks = np.round(pos).astype(np.int64)
        grid = np.zeros((ticks.max() + 1, r.shape[1]))
        np.add.at(grid, ticks, r)
        return _periodogram(grid, np.arange(len(grid)) * d + tau[0], oversample)
    freqs = np.linspace(2 * np.pi / span, 2 * np.pi / lo, n_f)
    P = sum(signal.lombscargle(tau, r[:, j], freqs) for j in range(r.shape[1]))
    return 2 * np.pi / freqs, np.asarray(P)


def initial_periods(
    y: np.ndarray,
    tau: np.ndarray,
    n: int,
    exclude: Sequence[float] = (),
    min_period: float | None = None,
    max_period: float | None = None,
) -> list[float]:
    """Greedy residual periodogram: take the strongest peak, refit all amplitudes, subtract, repeat.

    Peaks within 10% of a chosen or excluded period are skipped. Every column of y counts.
    """
    y = np.asarray(y, dtype=float).reshape(len(tau), -1)
    tau = np.asarray(tau, dtype=float)
    span = tau[-1] - tau[0]
    lo = 2.0 * float(np.median(np.diff(tau))) if min_period is None else min_period
    hi = span / 2.0 if max_period is None else max_period
    chosen: list[float] = []
    taken = list(exclude)
    r = _least_squares_residual(y, tau, taken)
    for _ in range(n):
        periods, P = _periodogram(r, tau)
        ok = (periods >= lo) & (periods <= hi)
        for p0 in taken + chosen:
            ok &= np.abs(periods - p0) > 0.1 * p0
        if not ok.any():
            break
        i = int(np.argmax(np.where(ok, P, -np.inf)))
        chosen.append(float(periods[i]))
        r = _least_squares_residual(y, tau, taken + chosen)
    return chosen


def find_periods(
    y: np.ndarray,
    times: np.ndarray | None = None,
    n_periods: int = 1,
    sample_num: int = 24,
    method: str = "auto",
    heuristic: str = "verified",
    min_period: float | None = None,
    max_period: float | None = None,
) -> list[float]:
    """Periods of a series (in the units of `times`, default steps) from a greedy Fourier model.

    Each period is initialised by the residual periodogram (Lomb-Scargle on irregular times) and
    refined by the FFT loss-surface search of a least-squares sinusoid on the current residual.
    """
    y = np.asarray(y, dtype=float)
    y = y.reshape(len(y), -1)
    tau = np.arange(len(y), dtype=float) if times is None else np.asarray(times, dtype=float)
    if not np.all(np.isfinite(y)):
        raise DPKInputError("y contains NaN/inf; drop those points (and their times) first.")
    tau = tau - tau[0]
    phases = phase_grid(sample_num)
    found: list[float] = []
    for _ in range(n_periods):
        r = _least_squares_residual(y, tau, found)
        init = initial_periods(
            r, tau, 1, exclude=found, min_period=min_period, max_period=max_period
        )
        if not init:
            break
        w0 = 2 * np.pi / init[0]
        X = np.stack([np.cos(w0 * tau), np.sin(w0 * tau)], 1)
        amp, *_ = np.linalg.lstsq(X, r, rcond=None)  # (2, d)
        # loss with the slot at phase phi: sum_d (r - A cos phi - B sin phi)^2
        fit = np.cos(phases)[None, :, None] * amp[0] + np.sin(phases)[None, :, None] * amp[1]
        L = np.sum((r[:, None, :] - fit) ** 2, axis=2)

        def verify(w: float, r=r) -> float:
            return float(np.sum(_least_squares_residual(r, tau, [2 * np.pi / w]) ** 2))

        res = search_slot(
            L,
            tau,
            verify,
            existing_periods=found,
            current_omega=w0,
            heuristic=heuristic,
            method=method,
        )
        found.append(res.period)
    return found
