"""Sequential scoring: stop early once the balanced-accuracy CI is decisive or narrow."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from autointerp.errors import ConfigError, check_int


@dataclass(frozen=True)
class SequentialRule:
    round_size: int = 10  # 5 positives + 5 negatives per round
    first_look: int = 4  # first look after this many rounds
    max_looks: int = 10  # Bonferroni over at most this many looks
    level: float = 0.99
    half_width: float = 0.05
    low: float = 0.6
    high: float = 0.9
    max_examples: int = 200

    def __post_init__(self) -> None:
        w = "SequentialRule"
        check_int(w, "round_size", self.round_size, 2, "a round holds positives and negatives")
        check_int(w, "first_look", self.first_look, 1)
        check_int(w, "max_looks", self.max_looks, 1)
        check_int(w, "max_examples", self.max_examples, 1)
        if not 0 < self.level < 1:
            raise ConfigError(f"{w}: level must be in (0, 1) (e.g. 0.99), got {self.level}")
        if not self.half_width > 0:
            raise ConfigError(f"{w}: half_width must be > 0, got {self.half_width}")

    def z(self) -> float:
        alpha = (1 - self.level) / self.max_looks
        return float(norm.ppf(1 - alpha / 2))


def balanced_accuracy_interval(
    labels: np.ndarray, preds: np.ndarray, z: float
) -> tuple[float, float]:
    """Agresti–Coull-adjusted normal interval for (TPR+TNR)/2 (never zero width from perfect data)."""
    y = np.asarray(labels).astype(bool)
    p = np.asarray(preds).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return 0.0, 1.0
    t1 = ((y & p).sum() + 2) / (n1 + 4)
    t0 = ((~y & ~p).sum() + 2) / (n0 + 4)
    est = ((y & p).sum() / n1 + (~y & ~p).sum() / n0) / 2
    se = 0.5 * math.sqrt(t1 * (1 - t1) / (n1 + 4) + t0 * (1 - t0) / (n0 + 4))
    return max(0.0, est - z * se), min(1.0, est + z * se)


def should_stop(rule: SequentialRule, labels: np.ndarray, preds: np.ndarray, n_rounds: int) -> bool:
    if len(labels) >= rule.max_examples:
        return True
    if n_rounds < rule.first_look or n_rounds - rule.first_look >= rule.max_looks:
        return False  # no look this round (before the first look, or the looks are spent)
    lo, hi = balanced_accuracy_interval(labels, preds, rule.z())
    return (hi - lo) / 2 <= rule.half_width or hi < rule.low or lo > rule.high
