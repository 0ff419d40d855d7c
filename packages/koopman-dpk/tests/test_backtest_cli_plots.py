"""Backtest resume/refusal, baselines, plots and the CLI on tiny data."""

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
from koopman_dpk import DPK, DPKInputError
from koopman_dpk.backtest import backtest, evaluation_span, gefcom_loss_weights, summarize
from koopman_dpk.baselines import FourierBaseline, SeasonalNaive, StatsforecastModel, VanillaMLR
from koopman_dpk.cli import app
from koopman_dpk.freqsearch import phase_grid, search_slot
from koopman_dpk.plots import components, fan_chart, pit_hist, reliability, search_surface
from matplotlib.figure import Figure
from typer.testing import CliRunner

matplotlib.use("Agg")


def hourly(n=24 * 40, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-01", periods=n, freq="h")
    temp = rng.normal(size=n)
    y = 10 + 2 * np.cos(2 * np.pi * np.arange(n) / 24) + 0.5 * temp + 0.3 * rng.normal(size=n)
    return pd.Series(y, index=idx, name="load"), pd.DataFrame({"temp": temp}, index=idx)


def fast_dpk():
    return DPK(periods=["24h"], epochs=3, search_cutoff=0, trend="constant", seed=0)


def test_seasonal_naive_hand_computed():
    y = pd.Series([1.0, 2.0, 3.0, 2.0, 3.0, 4.0])  # season 3: residuals 1, 1, 1 -> sd 0
    b = SeasonalNaive(3).fit(y)
    np.testing.assert_array_equal(b.predict_mean(4), [2.0, 3.0, 4.0, 2.0])
    assert b.sigma_ == 0.0
    q = b.predict_quantiles(4, [0.1, 0.9])
    np.testing.assert_array_equal(q[:, 0], q[:, 1])


def test_fourier_baseline_recovers_sinusoid():
    t = np.arange(500.0)
    y = pd.Series(3 + np.cos(2 * np.pi * t / 17))
    b = FourierBaseline(n_periods=1).fit(y)
    np.testing.assert_allclose(
        b.predict_mean(17), 3 + np.cos(2 * np.pi * np.arange(500, 517) / 17), atol=1e-3
    )


def test_vanilla_mlr_recovers_a_model_in_its_span_and_uses_shifted_scenarios():
    # half-hourly load that lies exactly in Vanilla's design span: level + slot-of-day effect
    # + weekday effect + cubic in temperature. OLS must recover it, and the q-quantile is the
    # floor(q n)-th of the n = 9 forecasts made with the temperature shifted by -4..+4 days.
    # (A calendar month never seen in training has no month effect: that is Vanilla's design.)
    rng = np.random.default_rng(0)
    idx = pd.date_range("2021-03-01", periods=48 * 70, freq="30min")
    temp = pd.Series(15 + 5 * np.sin(np.arange(idx.size) / 300) + rng.normal(size=idx.size), idx)
    slot = (idx.hour * 2 + idx.minute // 30).to_numpy()
    slot_eff = 3 * np.cos(2 * np.pi * np.arange(48) / 48)
    wd_eff = np.array([0.0, 0.5, 0.4, 0.3, 0.2, -1.0, -1.5])

    def truth(ix, tt):
        s = (ix.hour * 2 + ix.minute // 30).to_numpy()
        return 50 + slot_eff[s] + wd_eff[ix.dayofweek.to_numpy()] + 0.8 * tt + 0.01 * tt**3

    y = pd.Series(truth(idx, temp.to_numpy()), idx)
    assert slot.max() == 47
    n_train = 48 * 21  # train 1-21 March, test 22-28 March (a month seen in training)
    test = idx[n_train : n_train + 48 * 7]
    m = VanillaMLR(temp, scenarios="shifted").fit(y.iloc[:n_train])
    levels = [0.1, 0.5, 0.9]
    q = m.predict_quantiles(len(test), levels, covariates=pd.DataFrame(index=test))
    scen = np.sort(
        np.stack(
            [
                truth(test, temp.reindex(test + pd.Timedelta(days=d)).to_numpy())
                for d in range(-4, 5)
            ],
            1,
        ),
        axis=1,
    )
    expected = scen[:, [int(np.floor(lv * 9)) for lv in levels]]
    np.testing.assert_allclose(q, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(DPKInputError, match="DatetimeIndex"):
        VanillaMLR(temp).fit(pd.Series(y.to_numpy()))


def _vanilla_truth(ix, tt):
    wd_eff = np.array([0.0, 0.5, 0.4, 0.3, 0.2, -1.0, -1.5])
    return 50 + 2 * np.cos(2 * np.pi * ix.hour.to_numpy() / 24) + wd_eff[ix.dayofweek] + 0.8 * tt


def test_vanilla_mlr_past_years_scenarios_are_hong_s_and_ex_ante():
    # hourly temperature over 4 years with a distinct value at every hour; the test week's
    # scenario (k years back, d days shifted) must read exactly temp(t - k years + d days)
    idx = pd.date_range("2011-01-01", "2015-04-30 23:00", freq="h")
    hours = np.arange(idx.size, dtype=float)
    temp = pd.Series(10 + 8 * np.sin(2 * np.pi * hours / 8766) + hours / 1e4, idx)
    y = pd.Series(_vanilla_truth(idx, temp.to_numpy()), idx)
    origin = pd.Timestamp("2015-03-22")
    test = pd.date_range(origin, periods=24 * 7, freq="h")
    m = VanillaMLR(temp, scenarios="past_years", n_years=11).fit(y[y.index < origin])
    temps = m.scenario_temperatures(test)
    # 2011-03-18 (k=4, d=-4) is in the history, so 4 years x 9 shifts = 36 scenarios
    assert temps.shape == (test.size, 36) and m.scenarios_used_ == "past_years"
    first = pd.Timestamp("2015-03-22 00:00")
    by_hand = [
        temp[pd.Timestamp("2014-03-18 00:00")],  # k = 1, d = -4
        temp[pd.Timestamp("2014-03-22 00:00")],  # k = 1, d = 0
        temp[pd.Timestamp("2012-03-26 00:00")],  # k = 3, d = +4
    ]
    np.testing.assert_allclose(temps[test.get_loc(first), [0, 4, 26]], by_hand)
    # ex ante: temperatures at or after the origin are never read
    blind = temp.where(temp.index < origin)
    m2 = VanillaMLR(blind, scenarios="past_years").fit(y[y.index < origin])
    np.testing.assert_allclose(m2.scenario_temperatures(test), temps)
    # quantiles: sorted[floor(q n)] of the 36 scenario forecasts (Vanilla recovers the truth)
    levels = [0.1, 0.5, 0.9]
    q = m.predict_quantiles(test.size, levels, covariates=pd.DataFrame(index=test))
    scen = np.sort(np.stack([_vanilla_truth(test, temps[:, j]) for j in range(36)], 1), axis=1)
    np.testing.assert_allclose(q, scen[:, [int(np.floor(lv * 36)) for lv in levels]], atol=1e-6)


def test_vanilla_mlr_too_few_past_years():
    idx = pd.date_range("2014-01-01", "2015-04-30 23:00", freq="h")
    temp = pd.Series(10 + np.sin(np.arange(idx.size) / 500), idx)
    y = pd.Series(_vanilla_truth(idx, temp.to_numpy()), idx)
    origin = pd.Timestamp("2015-03-22")
    test = pd.date_range(origin, periods=48, freq="h")
    with pytest.raises(DPKInputError, match="need 3 past years.*found 1"):
        VanillaMLR(temp, scenarios="past_years").fit(y[y.index < origin]).scenario_temperatures(
            test
        )
    auto = VanillaMLR(temp).fit(y[y.index < origin])
    with pytest.warns(UserWarning, match="shifted"):
        temps = auto.scenario_temperatures(test)
    assert auto.scenarios_used_ == "shifted" and temps.shape == (48, 9)
    with pytest.raises(DPKInputError, match="scenarios must be"):
        VanillaMLR(temp, scenarios="future")


@pytest.mark.slow
def test_statsforecast_wrapper_maps_levels_to_quantiles():
    pytest.importorskip("statsforecast")
    rng = np.random.default_rng(0)
    v = np.tile([1.0, 5.0, 3.0], 40) + 0.1 * rng.normal(size=120)
    b = StatsforecastModel("SeasonalNaive", 3).fit(pd.Series(v))
    q = b.predict_quantiles(6, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(q[:, 1], np.tile(v[-3:], 2))  # median = last season, repeated
    raw = b.model_.predict(h=6, level=[80])
    np.testing.assert_allclose(q[:, 0], raw["lo-80"])  # q = 0.1 is the lower end of the 80% PI
    np.testing.assert_allclose(q[:, 2], raw["hi-80"])
    with pytest.raises(DPKInputError, match="unknown statsforecast model"):
        StatsforecastModel("Prophet").fit(pd.Series(v))


def test_backtest_resumes_and_refuses_a_changed_config(tmp_path):
    y, x = hourly()
    kw = dict(
        origins=["2021-02-01", "2021-02-05"],
        horizon="2D",
        baselines={"SN": lambda: SeasonalNaive(24)},
        out_dir=tmp_path,
        progress=False,
    )
    res = backtest(fast_dpk, y, x, config={"v": 1}, **kw)
    assert set(res.model) == {"DPK", "SN"} and len(res) == 4
    assert res[res.model == "DPK"].n_test.tolist() == [48, 48]
    files = sorted(tmp_path.glob("origin-*.json"))
    assert len(files) == 2

    def boom():
        raise AssertionError("finished origins must not be refitted")

    again = backtest(boom, y, x, config={"v": 1}, **kw)
    pd.testing.assert_frame_equal(again, res)
    with pytest.raises(DPKInputError, match="another configuration"):
        backtest(fast_dpk, y, x, config={"v": 2}, **kw)
    s = summarize(res)
    assert s.loc[0, "baseline"] == "SN" and s.loc[0, "pinball_ratio"] > 0
    assert json.loads((tmp_path / "backtest.json").read_text())["models"] == ["DPK", "SN"]


def test_backtest_bad_horizon_and_origins_outside_the_data():
    y, x = hourly()

    def boom():
        raise AssertionError("a bad horizon must fail before any fit")

    with pytest.raises(DPKInputError, match="cannot parse horizon 'two days'"):
        backtest(boom, y, x, origins=["2021-02-01"], horizon="two days", progress=False)
    # before the data (no training points) and after it (no test points): skipped, and said so
    origins = ["2020-06-01", "2021-02-01", "2022-01-01"]
    with pytest.warns(UserWarning, match=r"skipped 2 of 3 origin\(s\)") as rec:
        res = backtest(fast_dpk, y, x, origins=origins, horizon="1D", progress=False)
    msg = next(str(w.message) for w in rec if "skipped" in str(w.message))
    assert "2020-06-01" in msg and "2022-01-01" in msg and "2021-02-01" not in msg
    assert res.origin.unique().tolist() == [str(pd.Timestamp("2021-02-01"))]


def test_parallel_backtest_gives_the_sequential_rows_and_resumes(tmp_path):
    y, x = hourly()
    kw = dict(
        origins=["2021-02-01", "2021-02-03", "2021-02-05"],
        horizon="2D",
        baselines={"SN": lambda: SeasonalNaive(24)},
        progress=False,
    )
    seen = {}
    # workers unpickle the factory: a lambda travels by value (a function of this test module
    # would travel by reference, and pytest's rootdir imports are not importable there)
    fast = lambda: DPK(periods=["24h"], epochs=3, search_cutoff=0, trend="constant", seed=0)  # noqa: E731
    seq = backtest(fast, y, x, **kw).drop(columns="seconds")
    par = backtest(
        fast, y, x, n_jobs=2, on_forecast=lambda o, fc: seen.setdefault(o, fc), **kw
    ).drop(columns="seconds")
    pd.testing.assert_frame_equal(par, seq)  # same rows, same (origin) order
    assert sorted(seen) == [pd.Timestamp(o) for o in kw["origins"]]  # forecasts reach the parent
    # a resumed run computes only the missing origins, in the workers
    first = backtest(fast, y, x, out_dir=tmp_path, **{**kw, "origins": kw["origins"][:1]})
    both = backtest(fast, y, x, out_dir=tmp_path, n_jobs=2, **kw).drop(columns="seconds")
    pd.testing.assert_frame_equal(both, seq)
    assert len(list(tmp_path.glob("origin-*.json"))) == 3 and len(first) == 2
    with pytest.raises(DPKInputError, match="n_jobs"):
        backtest(fast, y, x, n_jobs=0, **kw)
    # a module-level function of this test module travels by reference, and the workers cannot
    # import it (pytest's rootdir import of a hyphenated path): a clear error names the fix
    with pytest.raises(DPKInputError, match="importable module, or use n_jobs=1"):
        backtest(fast_dpk, y, x, n_jobs=2, **kw)


def test_calendar_month_span_and_gefcom_weights():
    start, end = evaluation_span(pd.Timestamp("2017-02-01"), "month")
    assert (end - start) == pd.Timedelta(days=28)  # not 31 days
    w = gefcom_loss_weights(
        pd.date_range("2016-01-01", periods=1000, freq="D"), pd.Timestamp("2018-07-01")
    )
    assert w.shape == (1000,) and w[-1] > w[0]  # recency


def test_plots_return_figures():
    y, x = hourly(24 * 10)
    m = DPK(periods=["24h"], epochs=2, search_cutoff=0).fit(y[:200], covariates=x[:200])
    fc = m.predict(times=y.index[200:248], covariates=x[200:248])
    assert isinstance(
        fan_chart(fc, y[200:248].to_numpy(), history=(y.index[:200], y[:200])), Figure
    )
    assert isinstance(pit_hist(fc.pit(y[200:248].to_numpy())), Figure)
    assert isinstance(reliability(fc, y[200:248].to_numpy()), Figure)
    assert isinstance(components(m, times=y.index[200:248], covariates=x[200:248]), Figure)
    tau = np.arange(300.0)
    L = (np.cos(2 * np.pi * tau / 11)[:, None] - np.cos(phase_grid(8))[None, :]) ** 2
    assert isinstance(search_surface(search_slot(L, tau, keep_surface=True), [11]), Figure)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_cli_fit_predict_backtest_csv_and_netcdf(tmp_path):
    y, x = hourly(24 * 20)
    df = pd.concat([y, x], axis=1)
    df.index.name = "time"
    csv = tmp_path / "data.csv"
    df.to_csv(csv)
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "fit",
            str(csv),
            "--target",
            "load",
            "--covariates",
            "temp",
            "--periods",
            "24h",
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "model"),
        ],
    )
    assert r.exit_code == 0, r.output
    future = df[["temp"]].iloc[:24].copy()
    future.index = df.index[-1] + pd.Timedelta("1h") * np.arange(1, 25)
    future.index.name = "time"
    future.to_csv(tmp_path / "future.csv")
    r = runner.invoke(
        app,
        [
            "predict",
            str(tmp_path / "model"),
            "--data",
            str(tmp_path / "future.csv"),
            "--out",
            str(tmp_path / "fc.csv"),
        ],
    )
    assert r.exit_code == 0, r.output
    out = pd.read_csv(tmp_path / "fc.csv", index_col=0)
    assert len(out) == 24 and {"mean", "std", "q0.1", "q0.9"} <= set(out.columns)
    nc = tmp_path / "data.nc"
    df.to_xarray().to_netcdf(nc)
    r = runner.invoke(
        app,
        [
            "fit",
            str(nc),
            "--target",
            "load",
            "--periods",
            "24h",
            "--epochs",
            "2",
            "--out",
            str(tmp_path / "model2"),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["predict", str(tmp_path / "model2"), "--horizon", "12", "--out", str(tmp_path / "fc.nc")],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["fit", str(csv), "--target", "nope", "--out", str(tmp_path / "m3")])
    assert r.exit_code == 2 and "nope" in r.output
    # any other setting through --set KEY=VALUE (JSON values, else strings)
    base = ["fit", str(csv), "--target", "load", "--periods", "24h", "--epochs", "2"]
    r = runner.invoke(
        app,
        [*base, "--out", str(tmp_path / "m4"), "--set", "level_window=24h", "--set", "hidden=[8]"],
    )
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "m4" / "config.json").read_text())["config"]
    assert saved["level_window"] == "24h" and list(saved["hidden"]) == [8]
    # trend="auto": the chosen trend is reported and saved with the model
    r = runner.invoke(
        app,
        [*base, "--out", str(tmp_path / "m6"), "--trend", "auto", "--set", "val_span=96h"]
        + ["--set", 'trend_candidates=["constant", "linear"]'],
    )
    assert r.exit_code == 0, r.output
    chosen = json.loads((tmp_path / "m6" / "config.json").read_text())["trend_choice"]["trend"]
    assert chosen in ("constant", "linear") and f"trend {chosen}" in r.output
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "m5"), "--set", "nope=1"])
    assert r.exit_code != 0 and "unknown DPK argument" in r.output
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "m5"), "--set", "level_window"])
    assert r.exit_code == 2 and "KEY=VALUE" in r.output
    r = runner.invoke(
        app,
        [
            "backtest",
            str(csv),
            "--target",
            "load",
            "--origins",
            "2021-01-15",
            "--horizon",
            "1D",
            "--periods",
            "24h",
            "--epochs",
            "2",
            "--baselines",
            "seasonal_naive:24",
            "--out-dir",
            str(tmp_path / "bt"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "pinball_ratio" in r.output


def test_per_origin_ratios_by_hand():
    from koopman_dpk.backtest import per_origin_ratios

    res = pd.DataFrame(
        {
            "origin": ["a", "a", "b", "b"],
            "model": ["DPK", "SeasonalNaive(24)", "DPK", "SeasonalNaive(24)"],
            "pinball": [1.0, 4.0, 3.0, 2.0],
            "coverage80": [0.8, 0.9, 0.7, 0.6],
        }
    )
    out = per_origin_ratios(res)
    assert list(out.columns) == ["DPK/SeasonalNaive", "DPK coverage80"]
    np.testing.assert_allclose(out["DPK/SeasonalNaive"].to_numpy(), [0.25, 1.5])
    np.testing.assert_allclose(out["DPK coverage80"].to_numpy(), [0.8, 0.7])
