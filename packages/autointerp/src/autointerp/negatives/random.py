from __future__ import annotations

import numpy as np


def random_negatives(
    eligible: np.ndarray, n: int, rng: np.random.Generator, exclude: set[int] | None = None
) -> list[int]:
    """Uniform draw of ``n`` pool windows without replacement (skipping ``exclude``)."""
    pool = np.asarray(eligible)
    if exclude:
        pool = pool[~np.isin(pool, list(exclude))]
    take = min(n, len(pool))
    return [int(x) for x in rng.choice(pool, size=take, replace=False)] if take else []
