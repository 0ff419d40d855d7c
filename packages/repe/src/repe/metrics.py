"""Reading metrics: AUROC (Mann-Whitney, ties averaged) with group-bootstrap CIs, group
accuracy, and Youden's-J thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import NonFiniteActivationError


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    end = np.cumsum(counts)
    avg = end - (counts - 1) / 2.0
    return avg[inv].astype(np.float64)


def auroc(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """P(score_pos > score_neg) + 0.5 P(tie), by the Mann-Whitney U statistic."""
    p = np.asarray(pos_scores, dtype=np.float64).ravel()
    n = np.asarray(neg_scores, dtype=np.float64).ravel()
    if len(p) == 0 or len(n) == 0:
        return float("nan")
    if not (np.isfinite(p).all() and np.isfinite(n).all()):
        raise NonFiniteActivationError(
            f"AUROC scores contain NaN or Inf ({int((~np.isfinite(p)).sum())} positive, "
            f"{int((~np.isfinite(n)).sum())} negative); their ranks would be meaningless. Check "
            "the activations and the reading vector for non-finite values."
        )
    ranks = _average_ranks(np.concatenate([p, n]))
    u = ranks[: len(p)].sum() - len(p) * (len(p) + 1) / 2.0
    return float(u / (len(p) * len(n)))


def group_accuracy(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """Fraction of pairs whose positive item has the strictly higher score (RepE's metric)."""
    p, n = np.asarray(pos_scores), np.asarray(neg_scores)
    if len(p) != len(n):
        raise ValueError("group accuracy needs paired scores of equal length")
    return float(np.mean(p > n))


def bootstrap_auroc_ci(
    pos_scores: np.ndarray,
    neg_scores: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI for AUROC, resampling whole groups (pairs) with replacement."""
    p, n = np.asarray(pos_scores, float), np.asarray(neg_scores, float)
    if groups is None:
        if len(p) != len(n):
            raise ValueError("unpaired scores need explicit groups for a grouped bootstrap")
        groups = np.arange(len(p))
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    idx_by_group = {g: np.flatnonzero(groups == g) for g in uniq}
    stats = []
    for _ in range(n_boot):
        pick = rng.choice(uniq, size=len(uniq), replace=True)
        idx = np.concatenate([idx_by_group[g] for g in pick])
        stats.append(auroc(p[idx], n[idx]))
    lo, hi = np.nanpercentile(stats, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def youden_threshold(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """Threshold maximising TPR - FPR (midpoint between adjacent sorted scores)."""
    p, n = np.asarray(pos_scores, float), np.asarray(neg_scores, float)
    cand = np.unique(np.concatenate([p, n]))
    if len(cand) == 1:
        return float(cand[0])
    mids = np.concatenate([[cand[0] - 1e-9], (cand[1:] + cand[:-1]) / 2, [cand[-1] + 1e-9]])
    j = [(p > t).mean() - (n > t).mean() for t in mids]
    return float(mids[int(np.argmax(j))])


@dataclass
class LayerMetrics:
    layer: int
    auroc: float
    auroc_ci: tuple[float, float]
    accuracy: float | None
    threshold: float
    n: int


@dataclass
class LayerReport:
    """Per-layer reading quality; ``best_layer`` is chosen on this (validation) data."""

    layers: list[LayerMetrics] = field(default_factory=list)

    @property
    def best_layer(self) -> int:
        return max(self.layers, key=lambda m: (m.auroc, m.accuracy or 0.0)).layer

    def to_dict(self) -> dict[int, dict[str, object]]:
        return {
            m.layer: {
                "auroc": m.auroc,
                "auroc_ci": list(m.auroc_ci),
                "accuracy": m.accuracy,
                "threshold": m.threshold,
                "n": m.n,
            }
            for m in self.layers
        }

    def table(self) -> str:
        lines = ["layer  auroc  (95% CI)        acc"]
        for m in self.layers:
            acc = "  -  " if m.accuracy is None else f"{m.accuracy:.3f}"
            lines.append(
                f"{m.layer:5d}  {m.auroc:.3f}  ({m.auroc_ci[0]:.3f}-{m.auroc_ci[1]:.3f})  {acc}"
            )
        return "\n".join(lines)

    def plot(self, path: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ls = [m.layer for m in self.layers]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(ls, [m.auroc for m in self.layers], "o-", label="AUROC")
        ax.fill_between(
            ls,
            [m.auroc_ci[0] for m in self.layers],
            [m.auroc_ci[1] for m in self.layers],
            alpha=0.2,
        )
        if all(m.accuracy is not None for m in self.layers):
            ax.plot(ls, [m.accuracy for m in self.layers], "s--", label="pair accuracy")
        ax.axhline(0.5, color="gray", lw=0.8)
        ax.set_xlabel("block (0-based)")
        ax.set_ylabel("held-out score")
        ax.set_ylim(0, 1.02)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
