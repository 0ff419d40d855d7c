from __future__ import annotations

import numpy as np
from repe.metrics import auroc, bootstrap_auroc_ci, group_accuracy, youden_threshold
from sklearn.metrics import roc_auc_score


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    p = rng.integers(0, 5, 40).astype(float)
    n = rng.integers(0, 4, 30).astype(float)
    y = np.r_[np.ones(40), np.zeros(30)]
    assert np.isclose(auroc(p, n), roc_auc_score(y, np.r_[p, n]))


def test_auroc_hand_values():
    assert auroc([2, 3], [0, 1]) == 1.0
    assert auroc([0], [1]) == 0.0
    assert auroc([1], [1]) == 0.5


def test_group_accuracy_and_ci():
    p = np.array([1.0, 2.0, 3.0, 0.0])
    n = np.array([0.0, 1.0, 4.0, -1.0])
    assert group_accuracy(p, n) == 0.75
    lo, hi = bootstrap_auroc_ci(p, n, n_boot=200)
    assert 0 <= lo <= auroc(p, n) <= hi <= 1


def test_youden_threshold_separates():
    t = youden_threshold([3.0, 4.0, 5.0], [0.0, 1.0, 2.0])
    assert 2.0 < t < 3.0
