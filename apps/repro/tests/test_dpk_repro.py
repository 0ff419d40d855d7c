"""The DPK reproduction: the hour/weekday summaries against hand-computed values, DPK's
heteroscedastic scale on a planted pattern, and an end-to-end smoke run that resumes."""

import json

import numpy as np
import pandas as pd
import pytest
from repro.dpk import hour_weekday_profile, variation_summary


def test_profile_and_variation_by_hand():
    # omega = 1 + 0.5 [8 <= hour < 20] + 0.2 [weekend] over four full weeks
    idx = pd.date_range("2014-12-01", periods=48 * 28, freq="30min")  # a Monday
    day = (idx.hour >= 8) & (idx.hour < 20)
    weekend = idx.dayofweek >= 5
    omega = 1 + 0.5 * day + 0.2 * weekend
    prof = hour_weekday_profile({"omega": omega}, idx)
    table = prof["omega"]
    assert table.shape == (48, 7) and list(table.columns)[0] == "Mon"
    assert table.loc[9.5, "Sat"] == pytest.approx(1.7)
    v = variation_summary(prof).loc["omega"]
    # by hour: mean over weekdays = base(h) + 0.2 * 2/7
    assert v["hour max/min"] == pytest.approx((1.5 + 0.4 / 7) / (1 + 0.4 / 7))
    # by weekday: mean over hours = 1 + 0.5 * 12/24 (+ 0.2 at the weekend)
    assert v["weekday min"] == pytest.approx(1.25) and v["weekday max"] == pytest.approx(1.45)


def test_dpk_scale_follows_a_planted_hourly_pattern():
    # Normal noise with sd 1 at night and 2 by day on a daily cycle: the fitted sigma's
    # day/night ratio must be near 2
    from koopman_dpk import DPK

    rng = np.random.default_rng(0)
    idx = pd.date_range("2014-01-06", periods=48 * 56, freq="30min")
    day = (idx.hour >= 8) & (idx.hour < 20)
    y = pd.Series(
        10
        + np.cos(2 * np.pi * idx.hour / 24)
        + np.where(day, 2.0, 1.0) * rng.normal(size=idx.size),
        idx,
    )
    m = DPK(periods=["24h"], num_freqs=2, trend="constant", epochs=40, search_cutoff=0, seed=0)
    m.fit(y)
    fut = pd.date_range(idx[-1] + pd.Timedelta("30min"), periods=48 * 7, freq="30min")
    params = {k: np.asarray(v) for k, v in m.predict(times=fut).params.items()}
    table = hour_weekday_profile(params, fut)["sigma"].mean(axis=1)
    ratio = (
        table[(table.index >= 9) & (table.index < 19)].mean()
        / table[(table.index < 7) | (table.index >= 21)].mean()
    )
    assert 1.6 < ratio < 2.4, ratio


@pytest.mark.slow
def test_repro_dpk_cli_runs_and_resumes(tmp_path):
    pytest.importorskip("statsforecast")
    from repro.cli import app
    from typer.testing import CliRunner

    args = ["dpk", "--out", str(tmp_path), "--origins", "2014-12-01", "--epochs", "2"]
    args += ["--component-epochs", "2"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    report = (tmp_path / "report.html").read_text()
    assert "Vanilla" in report and report.count("<img") == 2
    head = json.loads((tmp_path / "headline.json").read_text())
    assert head["origins"] == 1 and 0 < head["DPK coverage80"] <= 1
    assert head["scale max/min by hour"] > 1
    done = sorted((tmp_path / "backtest").glob("origin-*.json"))
    stamps = [p.stat().st_mtime_ns for p in done] + [
        (tmp_path / "component_model_epochs-2" / "config.json").stat().st_mtime_ns
    ]
    r = CliRunner().invoke(app, args)  # rerun: finished origin and component model reused
    assert r.exit_code == 0, r.output
    assert [p.stat().st_mtime_ns for p in done] + [
        (tmp_path / "component_model_epochs-2" / "config.json").stat().st_mtime_ns
    ] == stamps
