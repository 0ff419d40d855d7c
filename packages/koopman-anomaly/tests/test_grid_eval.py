import numpy as np
import pandas as pd
import pytest
from koopman_anomaly import baselines, evaluate, grid, synth


def test_randomized_svd_matches_numpy():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 80)) + 0.01 * rng.normal(size=(300, 80))
    _, s, _ = grid.randomized_svd(A, 5)
    np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False)[:5], rtol=1e-6)


def test_pca_explained_variance_uses_squares():
    g = synth.make_grid(seed=0, shape=(8, 12), end="2018-06-30 23:00", anomalies=False)
    Y = np.log(g.no2.values).reshape(len(g.time), -1)
    times = pd.DatetimeIndex(g.time.values)
    train = np.asarray(times < "2018-05-01")
    m = grid.pca_fit(
        Y,
        times,
        train,
        rank=3,
        forecaster_options={"periods": ("24h", "168h"), "harmonics": (3, 2)},
    )
    X = Y[train] - Y[train].mean(0)
    s = np.linalg.svd(X, compute_uv=False)
    assert m.explained_variance == pytest.approx(np.sum(s[:3] ** 2) / np.sum(s**2), rel=1e-4)
    out = grid.pca_zscores(m, Y, times)
    zt = out["z"][train]
    assert np.nanstd(zt) == pytest.approx(1.0, abs=0.15)
    calib = np.asarray((times >= "2018-05-01") & (times < "2018-06-01"))
    test = np.asarray(times >= "2018-06-01")
    T2, p = grid.hotelling_scores(out["score_z"][calib], out["score_z"], 24)
    assert np.nanmean(p[test][23::24] < 0.05) < 0.2


def test_dask_grid_equals_eager():
    lazy = synth.lazy_grid(
        n_time=24 * 90,
        shape=(6, 8),
        chunks=(3, 4),
        start="2019-09-01",
        drop=("2019-11-01", "2019-11-29"),
        dtype="float64",
    )
    cfg = grid.GridConfig(periods=("24h", "168h"), harmonics=(2, 1), window=72)
    per = dict(
        train=("2019-09-01", "2019-10-10"),
        calib=("2019-10-11", "2019-10-31"),
        monitor=("2019-11-01", "2019-11-29"),
    )
    res = grid.finalize_grid(grid.detect_grid(lazy["log_no2"], cfg=cfg, **per), cfg)
    times = pd.DatetimeIndex(lazy.time.values)

    def m(p):
        return np.asarray(
            (times >= p[0]) & (times <= pd.Timestamp(p[1]) + pd.Timedelta("23h59min"))
        )

    mon = np.flatnonzero(m(per["monitor"]))
    from koopman_anomaly.windows import decision_index

    dec = decision_index(len(times), mon[0], mon[-1] + 1, 72)
    eager = grid.grid_stats_eager(
        lazy["log_no2"].values, times, m(per["train"]), m(per["calib"]), dec, cfg
    )
    np.testing.assert_allclose(
        res.p_value.transpose("lat", "lon", "decision_time").values, eager[:, :, 1, :], atol=1e-5
    )
    # the drop region (lat 35..60, lon -10..40) is absent at this resolution except where it is
    assert res.flag_fraction.dims == ("lat", "lon")


def test_time_chunked_grid_warns():
    lazy = synth.lazy_grid(
        n_time=24 * 60, shape=(4, 4), chunks=(2, 2), start="2019-09-01", drop=None
    )
    da = lazy["log_no2"].chunk({"time": 500})
    with pytest.warns(UserWarning, match="rechunking"):
        grid.detect_grid(
            da,
            train=("2019-09-01", "2019-09-30"),
            calib=("2019-10-01", "2019-10-15"),
            monitor=("2019-10-16", "2019-10-30"),
            cfg=grid.GridConfig(periods=("24h",), harmonics=(1,), window=48),
        )


def test_auroc_matches_sklearn_and_hand_value():
    assert evaluate.auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(
        0.75
    )
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    s, y = rng.normal(size=300), rng.integers(0, 2, 300)
    assert evaluate.auroc(s, y) == pytest.approx(metrics.roc_auc_score(y, s))


def test_event_metrics_by_hand():
    lab = np.zeros(50, int)
    lab[10:20] = 1
    lab[30:35] = 2
    evs = evaluate.events_from_labels(lab)
    assert [(e.start, e.end, e.kind) for e in evs] == [(10, 19, 1), (30, 34, 2)]
    flags = np.zeros(50, bool)
    flags[14] = True
    det, d = evaluate.event_detection(flags, evs, 3)
    assert det.tolist() == [True, False] and d[0] == 4
    assert evaluate.matched_threshold(np.arange(100.0), 0.1) == pytest.approx(90.0)
    pred = np.zeros(50, bool)
    pred[12] = True
    pred[40] = True
    # point-adjusted: segment 1 fully detected (10 TP), 1 FP, segment 2 missed (5 FN)
    assert evaluate.point_adjusted_f1(pred, lab) == pytest.approx(
        2 * (10 / 11) * (10 / 15) / (10 / 11 + 10 / 15)
    )


def test_baselines_detect_what_they_should():
    t = pd.date_range("2020-01-01", periods=24 * 70, freq="h")
    rng = np.random.default_rng(1)
    x = 0.3 * np.sin(2 * np.pi * np.arange(len(t)) / 24) + 0.1 * rng.normal(size=len(t))
    x[24 * 50 :] -= 1.0  # level shift
    train = np.asarray(t < "2020-02-01")
    ls = baselines.level_shift(x, train, window=48, side="lower")
    assert ls.flag[24 * 50 : 24 * 53].any() and not ls.flag[: 24 * 45].any()
    zs = baselines.zscore(x, t, train, side="lower")
    assert zs.flag[24 * 50 :].mean() > 0.9
    y = 0.3 * np.sin(2 * np.pi * np.arange(len(t)) / 24) + 0.1 * rng.normal(size=len(t))
    y[500] += 3.0
    esd = baselines.seasonal_esd(y, t, side="upper")
    assert esd.flag[500] and esd.flag.sum() < 10


def test_pixel_pvalues_match_per_pixel_reference_with_gaps():
    """The vectorised pixel kernel equals a plain per-pixel computation built from the station
    pieces (lstsq fit, residual SD, trailing-window mean via window_stats, HAC null), including a
    pixel with a gap that drops one decision window below 75 % coverage and an all-NaN pixel."""
    from koopman_anomaly.null import HACNull
    from koopman_anomaly.windows import decision_index, window_stats

    rng = np.random.default_rng(3)
    T, k = 24 * 60, 48
    hours = np.arange(T, dtype=float)
    cfg = grid.GridConfig(periods=("24h",), harmonics=(2,), window=k, side="both")
    X = grid._design(hours, cfg)
    y = 1.0 + np.sin(2 * np.pi * hours / 24)[None, :] + rng.normal(size=(5, T)) * 0.3
    y[1, 1200:1230] = np.nan  # a gap inside the monitoring period
    y[4] = np.nan
    train = hours < 24 * 30
    calib = (hours >= 24 * 30) & (hours < 24 * 45)
    dec = decision_index(T, 24 * 45, T, k)
    got = grid.pixel_pvalues(y, X, train, calib, dec, cfg, batch=2)
    for j in range(4):
        ok = np.isfinite(y[j]) & train
        beta = np.linalg.lstsq(X[ok], y[j, ok], rcond=None)[0]
        r = y[j] - X @ beta
        z = r / np.nanstd(r[train])
        ws = window_stats(z, k)
        null = HACNull().fit(z[calib], k)
        p = null.pvalue(ws.mean[dec], "both", count=ws.count[dec])
        np.testing.assert_allclose(got[j, 0], ws.mean[dec], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got[j, 1], p, rtol=1e-9, atol=1e-12)
    gap_dec = (dec >= 1200) & (dec - k + 1 < 1230)
    assert np.isnan(got[1, 0, gap_dec]).any() and np.isfinite(got[1, 0, ~gap_dec]).all()
    assert np.isnan(got[4]).all()
