import math

import numpy as np
import pytest
from autointerp.bootstrap import bootstrap_auroc, bootstrap_balanced_accuracy
from autointerp.metrics import auroc, classification_metrics, delong_se, pearson_r
from autointerp.sequential import SequentialRule, balanced_accuracy_interval, should_stop
from scipy.stats import norm, pearsonr
from sklearn.metrics import roc_auc_score


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 50)
        s = rng.integers(0, 5, 50).astype(float)  # many ties
        if y.all() or not y.any():
            continue
        assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auroc_nan_when_one_class():
    assert math.isnan(auroc(np.ones(5), np.arange(5)))


def test_classification_metrics_hand_computed():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])  # tp3 fn1 fp1 tn5
    m = classification_metrics(y, p)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 5 / 6) / 2)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))


def test_always_yes_is_chance_balanced():
    # SAEBench pitfall: "always 1" on 4 positives vs 10 negatives is 0.5 balanced, not 0.71 accuracy
    y = np.array([1] * 4 + [0] * 10)
    assert classification_metrics(y, np.zeros(14))["balanced_accuracy"] == 0.5


def test_pearson_matches_scipy_and_nan_on_constant():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=40), rng.normal(size=40)
    assert pearson_r(x, y) == pytest.approx(pearsonr(x, y).statistic)
    assert math.isnan(pearson_r(np.ones(5), np.arange(5)))


def test_bootstrap_auroc_coverage():
    """95% percentile CI covers the true AUROC of a binormal model in ~95% of simulated latents."""
    rng = np.random.default_rng(2)
    d = 1.0
    true = norm.cdf(d / math.sqrt(2))
    hits = 0
    n_sim = 200
    for _ in range(n_sim):
        y = np.r_[np.ones(40), np.zeros(40)]
        s = np.r_[rng.normal(d, 1, 40), rng.normal(0, 1, 40)]
        lo, hi = bootstrap_auroc(y, s, rng, b=300)
        hits += lo <= true <= hi
    assert 0.88 <= hits / n_sim <= 0.99


def test_delong_se_agrees_with_bootstrap_spread():
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(100), np.zeros(100)]
    s = np.r_[rng.normal(1, 1, 100), rng.normal(0, 1, 100)]
    lo, hi = bootstrap_auroc(y, s, rng, b=1000)
    assert (hi - lo) / (2 * 1.96) == pytest.approx(delong_se(y, s), rel=0.25)


def test_bootstrap_balanced_accuracy_perfect_is_degenerate():
    y = np.r_[np.ones(10), np.zeros(10)]
    assert bootstrap_balanced_accuracy(y, y, np.random.default_rng(0), b=100) == (1.0, 1.0)


def test_sequential_rule_stops_early_only_when_decisive():
    rule = SequentialRule()
    # hand computation: z = Phi^-1(1 - 0.01/10/2) = 3.29; Agresti-Coull with n per class:
    # n=20: t=22/24, se=0.5*sqrt(2 t(1-t)/24)=0.0398 -> lower 0.869 (go on); n=30: lower 0.906 (stop)
    y = np.r_[np.ones(20), np.zeros(20)]
    assert not should_stop(rule, y, y, n_rounds=4)
    y = np.r_[np.ones(30), np.zeros(30)]
    assert should_stop(rule, y, y, n_rounds=6)
    assert not should_stop(rule, y, y, n_rounds=3)  # before the first look
    rng = np.random.default_rng(0)
    coin = rng.integers(0, 2, 60)
    assert not should_stop(rule, y, coin, n_rounds=6)  # 40 coin flips are not decisive yet
    lo, hi = balanced_accuracy_interval(y, y, rule.z())
    assert lo < 1.0 and hi == 1.0  # Agresti-Coull never gives a zero-width interval
