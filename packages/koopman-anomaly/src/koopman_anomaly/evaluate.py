"""Evaluation: false-alarm rate per decision unit, event power, detection delay, matched-FAR
thresholds, AUROC and point-adjusted F1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass
class Event:
    series: int
    start: int  # first labelled index
    end: int  # last labelled index (inclusive)
    kind: int


def events_from_labels(labels: np.ndarray, kinds: tuple[int, ...] | None = None) -> list[Event]:
    """Contiguous runs of equal non-zero labels per column."""
    lab = np.asarray(labels)
    if lab.ndim == 1:
        lab = lab[:, None]
    out: list[Event] = []
    for j in range(lab.shape[1]):
        col = lab[:, j]
        pad = np.concatenate([[0], col, [0]])
        change = np.flatnonzero(pad[1:] != pad[:-1])
        for a, b in zip(change[:-1], change[1:], strict=False):
            v = int(pad[a + 1])
            if v != 0 and (kinds is None or v in kinds):
                out.append(Event(j, int(a), int(b - 1), v))
    return out


def unit_scores(point_score: np.ndarray, decisions: np.ndarray, k: int) -> np.ndarray:
    """Max of a per-time score over each decision window (t-k, t]; shape (n_dec, S)."""
    s = np.asarray(point_score, dtype=float)
    if s.ndim == 1:
        s = s[:, None]
    out = np.full((len(decisions), s.shape[1]), np.nan)
    for i, t in enumerate(decisions):
        w = s[max(0, t - k + 1) : t + 1]
        with np.errstate(all="ignore"):
            ok = np.isfinite(w).any(0)
            out[i, ok] = np.nanmax(w[:, ok], axis=0)
    return out


def far(unit_flags: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Flagged fraction of decision units (on anomaly-free data or outside events)."""
    f = np.asarray(unit_flags, dtype=bool)
    v = np.ones_like(f) if valid is None else np.asarray(valid, dtype=bool)
    return float(f[v].mean()) if v.any() else float("nan")


def matched_threshold(null_scores: np.ndarray, target_far: float) -> float:
    """Threshold tau with P(score > tau) = target_far over null decision units."""
    s = np.asarray(null_scores, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return float("inf")
    return float(np.quantile(s, 1 - target_far, method="higher"))


def event_detection(
    flag_times: np.ndarray, events: list[Event], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each event: detected (>=1 flag in [onset, end+k]) and delay (first such flag - onset),
    using a boolean (T, S) array of flag times. Delay is NaN when missed."""
    f = np.asarray(flag_times, dtype=bool)
    if f.ndim == 1:
        f = f[:, None]
    det = np.zeros(len(events), dtype=bool)
    delay = np.full(len(events), np.nan)
    for i, ev in enumerate(events):
        hit = np.flatnonzero(f[ev.start : ev.end + k + 1, ev.series])
        if hit.size:
            det[i] = True
            delay[i] = float(hit[0])
    return det, delay


def power(flag_times: np.ndarray, events: list[Event], k: int) -> float:
    det, _ = event_detection(flag_times, events, k)
    return float(det.mean()) if det.size else float("nan")


def delay(flag_times: np.ndarray, events: list[Event], k: int) -> float:
    """Median delay in steps over detected events."""
    _, d = event_detection(flag_times, events, k)
    return float(np.nanmedian(d)) if np.isfinite(d).any() else float("nan")


def auroc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney statistic (ties get half credit)."""
    s = np.asarray(score, dtype=float).ravel()
    y = np.asarray(label).ravel() != 0
    ok = np.isfinite(s)
    s, y = s[ok], y[ok]
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = sps.rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def point_adjusted_f1(pred: np.ndarray, label: np.ndarray) -> float:
    """Point-adjusted F1: a labelled segment counts as fully detected if any point in it is."""
    p = np.asarray(pred, dtype=bool).ravel().copy()
    y = np.asarray(label).ravel() != 0
    for ev in events_from_labels(y.astype(int)):
        if p[ev.start : ev.end + 1].any():
            p[ev.start : ev.end + 1] = True
    tp = float((p & y).sum())
    fp = float((p & ~y).sum())
    fn = float((~p & y).sum())
    if tp == 0:
        return 0.0
    prec, rec = tp / (tp + fp), tp / (tp + fn)
    return 2 * prec * rec / (prec + rec)
