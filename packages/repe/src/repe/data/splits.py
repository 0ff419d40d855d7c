"""Group-wise train/validation splits (done before any expansion into prefixes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import PairDataError
from .pairs import ContrastPair


def split_by_group(
    pairs: Sequence[ContrastPair], val_frac: float = 0.2, seed: int = 0
) -> tuple[list[ContrastPair], list[ContrastPair]]:
    """Split so that no group (default: each pair its own group) is in both parts."""
    if not 0.0 <= val_frac < 1.0:
        raise PairDataError(f"val_frac must be in [0, 1), got {val_frac}")
    keys = [p.group if p.group is not None else f"__pair{i}" for i, p in enumerate(pairs)]
    uniq = sorted(set(keys))
    if val_frac == 0.0:
        return list(pairs), []
    if len(uniq) < 2:
        raise PairDataError(
            f"cannot split {len(uniq)} group(s) into train and validation; add groups or set split=0"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    n_val = min(max(1, round(val_frac * len(uniq))), len(uniq) - 1)
    val_groups = {uniq[i] for i in order[:n_val]}
    train = [p for p, k in zip(pairs, keys, strict=True) if k not in val_groups]
    val = [p for p, k in zip(pairs, keys, strict=True) if k in val_groups]
    return train, val
