"""Fit time of a default DPK on 8,760 hourly points (the spec's target: <= 60 s on 2 CPU
cores), side by side with statsforecast's MSTL on the same series.

Series: vega-datasets seattle-temps (8,759 hourly 2010 temperatures, the DST hour missing) and
a synthetic 8,760-point hourly series with daily and weekly cycles. DPK runs with its
defaults (two periods found by the FFT loss-surface search, 500 epochs with early stopping),
plus the pinned-period variant the benchmarks use.

    uv run python benchmarks/dpk_fit_time.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from koopman_dpk import DPK
from koopman_dpk.baselines import StatsforecastModel
from koopman_dpk.datasets import load_seattle_temps


def _synthetic() -> pd.Series:
    rng = np.random.default_rng(0)
    idx = pd.date_range("2021-01-01", periods=8760, freq="h")
    t = np.arange(idx.size, dtype=float)
    y = 10 + 3 * np.cos(2 * np.pi * t / 24) + np.sin(2 * np.pi * t / 168) + rng.normal(size=t.size)
    return pd.Series(y, idx)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    warnings.filterwarnings("ignore")
    lines = []
    for name, y in (("seattle", load_seattle_temps()), ("synthetic", _synthetic())):
        models = {
            "default": lambda: DPK(seed=0),
            "pinned 24h/168h": lambda: DPK(periods=["24h", "168h"], search_cutoff=0, seed=0),
        }
        sf = _time(lambda y=y: StatsforecastModel("MSTL", [24, 168]).fit(y))
        for label, make in models.items():
            m = make()
            secs = _time(lambda m=m, y=y: m.fit(y))
            ep = m.history_.get("best_epoch")
            print(
                f"{name:9s} {label:16s} n={len(y)} DPK fit {secs:6.1f} s "
                f"(epochs run {len(m.history_.get('train_loss', []))}, best {ep}), MSTL fit {sf:.2f} s"
            )
            lines.append(f"fit seconds DPK {label} {name}: {secs:.1f}")
            lines.append(f"ratio fit time DPK {label}/MSTL {name}: {secs / sf:.1f}")
    print()
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
