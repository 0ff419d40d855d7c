"""The offline benchmark datasets load with the shapes the spec states, and recency weights make
the fit follow a periodic shape that changes over time."""

import numpy as np
import pandas as pd
import pytest
from koopman_dpk import DPK
from koopman_dpk.datasets import load_co2, load_elecdemand, load_seattle_temps, load_taylor
from koopman_dpk.errors import DPKInputError


def test_offline_datasets_have_the_documented_shapes():
    e = load_elecdemand()
    assert e.shape == (17520, 3) and e.index[0] == pd.Timestamp("2014-01-01 00:00")
    # one WorkDay value per day: 1 Jan 2014 (a holiday), Thu, Fri, Sat, Sun, Mon
    assert e["WorkDay"].iloc[::48][:6].tolist() == [0, 1, 1, 0, 0, 1]
    t = load_taylor()
    assert len(t) == 4032 and t.index[0].dayofweek == 0  # Monday 2000-06-05
    c = load_co2()
    assert len(c) == 2284 and int(c.isna().sum()) == 59
    s = load_seattle_temps()
    # 8,759 readings on the 8,760-hour grid of 2010: the DST hour is the one NaN
    assert len(s) == 8760 and int(s.isna().sum()) == 1
    assert s.index[s.isna()][0] == pd.Timestamp("2010-03-14 03:00")


def test_recency_weights_follow_a_changing_periodic_shape():
    # the daily amplitude grows from 1 to 3 in the last quarter: with a short half-life the
    # fitted amplitude is the recent one, without it the average
    rng = np.random.default_rng(0)
    T = 24 * 80
    t = np.arange(T, dtype=float)
    amp = np.where(t < 0.75 * T, 1.0, 3.0)
    y = amp * np.cos(2 * np.pi * t / 24) + 0.1 * rng.normal(size=T)
    kw = dict(periods=[24], trend="constant", epochs=30, lr=1e-2, search_cutoff=0, val="none")
    plain = DPK(**kw).fit(y)
    recent = DPK(recency_halflife=24 * 3, **kw).fit(y)
    ahead = np.arange(T, T + 24, dtype=float)

    def amplitude(m):
        mu = np.asarray(m.predict(times=ahead).mean())
        return (mu.max() - mu.min()) / 2

    assert abs(amplitude(recent) - 3.0) < 0.3, amplitude(recent)
    assert amplitude(plain) < 2.6, amplitude(plain)
    with pytest.raises(DPKInputError, match="recency_halflife"):
        DPK(recency_halflife=-1, **kw).fit(y)


def test_allow_single_cycle_accepts_fewer_than_two_cycles():
    # 1.5 cycles of a period-400 sine plus a daily-like period 20: refused by default (two
    # cycles needed), accepted with allow_single_cycle, and the long cycle is then usable
    t = np.arange(600, dtype=float)
    y = np.sin(2 * np.pi * t / 400) + 0.5 * np.cos(2 * np.pi * t / 20)
    kw = dict(periods=[20, 400], trend="constant", epochs=2, search_cutoff=0, val="none")
    with pytest.raises(DPKInputError, match="allow_single_cycle"):
        DPK(**kw).fit(y)
    m = DPK(allow_single_cycle=True, **kw).fit(y)
    assert m.periods_[0] == pytest.approx([20.0, 400.0])


@pytest.mark.slow
def test_end_slope_check_reads_a_known_slope():
    # weekly series: 1.5 units/year drift + an annual cycle; the OLS slope of the training
    # data, DPK's end-of-horizon slope and the realised one must be near 1.5 (MSTL's is a
    # baseline's opinion: only checked to be reported)
    pytest.importorskip("statsforecast")
    from koopman_dpk.bench import BenchCase, end_slope_check

    idx = pd.date_range("1980-01-05", periods=52 * 12, freq="7D")
    years = ((idx - idx[0]) / pd.Timedelta(days=365.25)).to_numpy(float)
    rng = np.random.default_rng(0)
    y = pd.Series(300 + 1.5 * years + 3 * np.sin(2 * np.pi * years), idx)
    y += 0.05 * rng.normal(size=idx.size)
    case = BenchCase(
        "toy",
        lambda: (y, None),
        dict(periods=["8766h"], num_freqs=1, trend="linear", epochs=60, search_cutoff=0, seed=0),
        origins=["1989-06-01"],
        quick_origins=[],
        horizon="728D",
        window=None,
        season=52,
        seasons=[52],
    )
    row = end_slope_check(case).iloc[0]
    for col in ("ols_slope", "dpk_end_slope", "realised_end_slope"):
        assert abs(row[col] - 1.5) < 0.15, (col, row[col])
    assert np.isfinite(row["mstl_end_slope"])
    assert row["dpk/ols"] == pytest.approx(row["dpk_end_slope"] / row["ols_slope"])
    # forecasts handed over (as the benchmark does from its backtest) give the same row
    o = pd.Timestamp("1989-06-01")
    test = y.index[(y.index >= o) & (y.index < o + pd.Timedelta("728D"))]
    mu = DPK(**case.dpk).fit(y[y.index < o]).predict(times=test).mean()
    again = end_slope_check(case, dpk_means={o: mu}).iloc[0]
    assert again["dpk_end_slope"] == pytest.approx(row["dpk_end_slope"], rel=1e-9)
