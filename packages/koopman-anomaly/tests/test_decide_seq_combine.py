import numpy as np
import pytest
from koopman_anomaly.combine import hotelling, ledoit_wolf_corr, stouffer, to_scores
from koopman_anomaly.decide import adjust, flags_from
from koopman_anomaly.sequential import SequentialDetector, cusum, glr, prewhiten
from scipy import stats


@pytest.mark.parametrize(
    "method,sm",
    [("bonferroni", "bonferroni"), ("holm", "holm"), ("bh", "fdr_bh"), ("by", "fdr_by")],
)
def test_adjust_matches_statsmodels(method, sm):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(0).uniform(size=(7, 5)) ** 2
    p[2, 3] = np.nan
    q = adjust(p, method)
    ok = np.isfinite(p)
    ref = multitest.multipletests(p[ok], method=sm)[1]
    np.testing.assert_allclose(q[ok], ref, rtol=1e-10)
    assert np.isnan(q[2, 3])


def test_bh_by_hand():
    q = adjust(np.array([0.01, 0.04, 0.03, 0.5]), "bh")
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5], rtol=1e-6)


def test_flags_sign():
    q = np.array([0.001, 0.5, 0.002])
    assert flags_from(q, np.array([-3, 0, 2.0]), 0.01, "both").tolist() == [-1, 0, 1]
    assert flags_from(q, np.zeros(3), 0.01, "lower").tolist() == [-1, 0, -1]


def test_cusum_by_hand_with_reset():
    u = np.array([-1.0, -1.0, 0.5, -2.0, 0.0])
    S, alarm = cusum(u, 0.5, "lower", threshold=1.2)
    # S: 0.5, 1.0, 0.0, 1.5 (alarm, reset), 0 -> max(0, 0-0-0.5)=0
    np.testing.assert_allclose(S, [0.5, 1.0, 0.0, 1.5, 0.0])
    assert alarm.tolist() == [False, False, False, True, False]


def test_glr_matches_brute_force():
    rng = np.random.default_rng(1)
    u = rng.normal(size=60)
    W = 7
    G = glr(u, W, "lower")
    for t in range(60):
        best = 0.0
        for tau in range(max(0, t - W + 1), t + 1):
            s = u[tau : t + 1].sum()
            if s < 0:
                best = max(best, s * s / (2 * (t - tau + 1)))
        assert G[t] == pytest.approx(best)


def test_prewhiten_ar1_gives_unit_white_noise():
    from koopman_anomaly.synth import ar1_phi

    x = ar1_phi(np.random.default_rng(0), (100_000,), 0.7, 1.0)
    u = prewhiten(x, 0.7)
    assert np.std(u[1:]) == pytest.approx(1.0, rel=0.02)
    assert abs(np.corrcoef(u[1:-1], u[2:])[0, 1]) < 0.02


def test_sequential_alarm_rate_and_detection():
    rng = np.random.default_rng(2)
    calib = rng.normal(size=(5000, 1))
    sd = SequentialDetector("cusum", "lower", alpha=0.1, horizon=200, n_rep=400).fit(calib)
    alarms = [sd.run(rng.normal(size=(200, 1)))[1].any() for _ in range(300)]
    assert np.mean(alarms) == pytest.approx(0.1, abs=0.05)
    shifted = rng.normal(size=(200, 1)) - 1.0
    assert sd.run(shifted)[1].any()


def test_stouffer_identity_and_hotelling_chi2():
    S = np.array([[-1.0, -2.0, 0.5]])
    Z, p = stouffer(S)
    assert Z[0] == pytest.approx(-2.5 / np.sqrt(3))
    assert p[0] == pytest.approx(stats.norm.cdf(-2.5 / np.sqrt(3)))
    R = np.array([[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1.0]])
    Z2, _ = stouffer(S, R)
    assert Z2[0] == pytest.approx(-2.5 / np.sqrt(3 + 2 * 0.5))
    T2, pt = hotelling(S, R)
    assert T2[0] == pytest.approx(float(S[0] @ np.linalg.solve(R, S[0])))
    assert pt[0] == pytest.approx(stats.chi2.sf(T2[0], 3))


def test_ledoit_wolf_is_a_correlation_and_shrinks():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 6))
    R = ledoit_wolf_corr(X)
    np.testing.assert_allclose(np.diag(R), 1.0)
    raw = np.corrcoef(X.T)
    off = ~np.eye(6, dtype=bool)
    assert np.abs(R[off]).mean() < np.abs(raw[off]).mean()
    assert np.all(np.linalg.eigvalsh(R) > 0)
    assert to_scores(np.array([0.5]))[0] == pytest.approx(0.0)
