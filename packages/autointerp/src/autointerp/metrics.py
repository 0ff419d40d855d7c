"""Per-latent metrics: balanced accuracy, precision/recall/F1, rank AUROC, Pearson r, DeLong SE."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def confusion(labels: np.ndarray, preds: np.ndarray) -> tuple[int, int, int, int]:
    y = np.asarray(labels).astype(bool)
    p = np.asarray(preds).astype(bool)
    tp = int(np.sum(y & p))
    tn = int(np.sum(~y & ~p))
    fp = int(np.sum(~y & p))
    fn = int(np.sum(y & ~p))
    return tp, tn, fp, fn


def classification_metrics(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    """Balanced accuracy ``(TPR+TNR)/2``, precision, recall, F1 (NaN where undefined)."""
    tp, tn, fp, fn = confusion(labels, preds)
    tpr = tp / (tp + fn) if tp + fn else math.nan
    tnr = tn / (tn + fp) if tn + fp else math.nan
    prec = tp / (tp + fp) if tp + fp else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else math.nan
    bal = (tpr + tnr) / 2
    return {
        "balanced_accuracy": bal,
        "precision": prec,
        "recall": tpr,
        "specificity": tnr,
        "f1": f1,
        "accuracy": (tp + tn) / max(1, tp + tn + fp + fn),
    }


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """``(R+ - n+(n+ + 1)/2) / (n+ n-)`` with average ranks for ties; NaN if a class is empty."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc_batch(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC per row of ``scores`` [B, n] with per-row labels [B, n]."""
    y = np.asarray(labels).astype(bool)
    r = rankdata(np.asarray(scores, dtype=float), axis=1)
    n_pos = y.sum(axis=1)
    n_neg = (~y).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((r * y).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def delong_se(labels: np.ndarray, scores: np.ndarray) -> float:
    """DeLong standard error of the AUROC (cross-check for the bootstrap CI)."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=float)
    pos, neg = s[y], s[~y]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return math.nan
    psi = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    v10 = psi.mean(axis=1)
    v01 = psi.mean(axis=0)
    return float(math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n))


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r; NaN when either side is constant (flag it, never report 0)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    return float((xc @ yc) / math.sqrt((xc @ xc) * (yc @ yc)))
