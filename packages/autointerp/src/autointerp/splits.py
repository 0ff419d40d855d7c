"""Document-level train / test / negative-pool split: disjoint by construction."""

from __future__ import annotations

from typing import Literal

import numpy as np

Split = Literal["train", "test", "pool"]
_M = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def doc_bucket(doc_ids: np.ndarray, seed: int) -> np.ndarray:
    """``hash(seed, doc_id) mod 100`` (vectorised splitmix64)."""
    with np.errstate(over="ignore"):
        mixed = splitmix64(
            np.asarray(doc_ids, dtype=np.int64).astype(np.uint64) ^ splitmix64(np.uint64(seed))
        )
    return (mixed % np.uint64(100)).astype(np.int64)


def doc_split(
    doc_ids: np.ndarray, seed: int, train_pct: int = 50, test_pct: int = 80
) -> np.ndarray:
    """0 = train, 1 = test, 2 = negative pool, per entry of ``doc_ids``."""
    if not 0 < train_pct < test_pct < 100:
        raise ValueError(f"need 0 < train_pct < test_pct < 100, got {train_pct}, {test_pct}")
    h = doc_bucket(doc_ids, seed)
    return np.where(h < train_pct, 0, np.where(h < test_pct, 1, 2))
