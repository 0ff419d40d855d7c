"""Choose explanation (train), validation and test windows from a latent's candidate windows."""

from __future__ import annotations

import numpy as np

from autointerp.windows import WindowSpan


def quantile_edges(maxima: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges of ``n_bins`` equal-count bins of window maxima."""
    if len(maxima) == 0:
        return np.zeros(n_bins - 1)
    return np.quantile(maxima, np.linspace(0, 1, n_bins + 1)[1:-1])


def bin_of(maxima: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, maxima, side="right")


def per_bin_pick(
    idx: np.ndarray, bins: np.ndarray, n_bins: int, per_bin: int, rng: np.random.Generator
) -> list[int]:
    """Up to ``per_bin`` indices from each bin, drawn without replacement."""
    out: list[int] = []
    for b in range(n_bins):
        members = idx[bins[idx] == b]
        if len(members) == 0:
            continue
        take = min(per_bin, len(members))
        out.extend(int(x) for x in rng.choice(members, size=take, replace=False))
    return out


def select(
    spans: list[WindowSpan],
    split_of_span: np.ndarray,
    sampler: str,
    n_bins: int,
    train_per_bin: int,
    test_per_bin: int,
    n_val: int,
    rng: np.random.Generator,
) -> tuple[list[int], list[int], list[int], np.ndarray]:
    """Return (train, val, test) span indices and the quantile bin of every span.

    Train and validation windows come only from train-split documents, test windows only from
    test-split documents, so the sets are disjoint by construction.
    """
    maxima = np.array([s.max_act for s in spans], dtype=float)
    edges = quantile_edges(maxima, n_bins)
    bins = bin_of(maxima, edges)
    all_idx = np.arange(len(spans))
    tr_idx = all_idx[split_of_span == 0]
    te_idx = all_idx[split_of_span == 1]
    n_train = n_bins * train_per_bin
    if sampler == "quantile":
        train = per_bin_pick(tr_idx, bins, n_bins, train_per_bin, rng)
    elif sampler == "top":
        train = [int(i) for i in tr_idx[np.argsort(-maxima[tr_idx], kind="stable")][:n_train]]
    elif sampler == "random":
        train = [int(i) for i in rng.choice(tr_idx, size=min(n_train, len(tr_idx)), replace=False)]
    elif sampler == "mix":
        n_top = n_train // 5
        top = [int(i) for i in tr_idx[np.argsort(-maxima[tr_idx], kind="stable")][:n_top]]
        rest = np.setdiff1d(tr_idx, top)
        per = max(1, (n_train - n_top) // n_bins)
        train = top + per_bin_pick(rest, bins, n_bins, per, rng)
    else:
        raise ValueError(f"unknown sampler {sampler!r}; valid: quantile, top, random, mix")
    remaining = np.setdiff1d(tr_idx, train)
    val = (
        [int(i) for i in rng.choice(remaining, size=min(n_val, len(remaining)), replace=False)]
        if n_val
        else []
    )
    test = per_bin_pick(te_idx, bins, n_bins, test_per_bin, rng)
    return train, val, test, bins
