"""Combining per-station evidence: correlated Stouffer and Hotelling T^2 with a Ledoit-Wolf
correlation estimated on non-overlapping calibration windows."""

from __future__ import annotations

import numpy as np
from scipy import stats as sps


def ledoit_wolf_corr(X: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf shrinkage of the correlation of the columns of X (rows = observations).

    Columns are standardised, then the sample covariance is shrunk towards the identity with
    the Ledoit-Wolf (2004) optimal intensity. Rows with NaN are dropped.
    """
    X = np.asarray(X, dtype=float)
    X = X[np.isfinite(X).all(axis=1)]
    n, p = X.shape
    if n < 2:
        return np.eye(p)
    Z = (X - X.mean(0)) / np.maximum(X.std(0), 1e-12)
    S = Z.T @ Z / n
    mu = np.trace(S) / p
    d2 = np.sum((S - mu * np.eye(p)) ** 2)
    b2 = sum(np.sum((np.outer(z, z) - S) ** 2) for z in Z) / n**2
    b2 = min(b2, d2)
    shrink = b2 / d2 if d2 > 0 else 1.0
    R = shrink * mu * np.eye(p) + (1 - shrink) * S
    dd = np.sqrt(np.diag(R))
    return R / np.outer(dd, dd)


def to_scores(p: np.ndarray) -> np.ndarray:
    """S = Phi^-1(p): oriented so that small p (evidence in the tested direction) is negative."""
    return sps.norm.ppf(np.clip(p, 1e-300, 1 - 1e-16))


def stouffer(
    S: np.ndarray, R: np.ndarray | None = None, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Z = w'S / sqrt(w'Rw) over the last axis; p = Phi(Z) (lower-tail, matching `to_scores`).

    Missing stations drop out of both numerator and R. Returns (Z, p).
    """
    S = np.atleast_2d(np.asarray(S, dtype=float))
    n = S.shape[-1]
    R = np.eye(n) if R is None else np.asarray(R, dtype=float)
    w = np.ones(n) if w is None else np.asarray(w, dtype=float)
    Z = np.full(S.shape[0], np.nan)
    for i, row in enumerate(S):
        ok = np.isfinite(row)
        if not ok.any():
            continue
        ww = w[ok]
        Z[i] = ww @ row[ok] / np.sqrt(ww @ R[np.ix_(ok, ok)] @ ww)
    return Z, sps.norm.cdf(Z)


def hotelling(S: np.ndarray, R: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """T^2 = S' R^-1 S over the last axis, p from chi^2 with n_valid degrees of freedom."""
    S = np.atleast_2d(np.asarray(S, dtype=float))
    n = S.shape[-1]
    R = np.eye(n) if R is None else np.asarray(R, dtype=float)
    T2 = np.full(S.shape[0], np.nan)
    dof = np.zeros(S.shape[0])
    for i, row in enumerate(S):
        ok = np.isfinite(row)
        if not ok.any():
            continue
        T2[i] = row[ok] @ np.linalg.solve(R[np.ix_(ok, ok)], row[ok])
        dof[i] = ok.sum()
    p = np.where(dof > 0, sps.chi2.sf(T2, np.maximum(dof, 1)), np.nan)
    return T2, p
