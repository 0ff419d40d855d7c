"""Shared types and helpers for direction finders."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import NonFiniteActivationError, PairDataError


@dataclass
class Direction:
    """A fitted direction at one layer.

    read:  (k, D) unit read covectors (scoring uses ``read[0]``).
    write: (k, D) write vectors for steering, in "diff" units (``write[0] . mean_diff`` is the
           projected class separation), so ``units="raw"`` steering adds exactly ``write``.
    mu:    (D,) centre (midpoint of the class means).
    """

    read: np.ndarray
    write: np.ndarray
    mu: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)


def as_float64(x: np.ndarray, name: str, layer: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise PairDataError(f"{name} must be a 2-D (n, hidden) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        where = f" at layer {layer}" if layer is not None else ""
        raise NonFiniteActivationError(
            f"{name} contains NaN or Inf{where}; run the model in float32 (or bfloat16 instead "
            "of float16) and check the inputs"
        )
    return x


def check_pairs(
    pos: np.ndarray, neg: np.ndarray, *, paired: bool, k: int = 1, layer: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    pos = as_float64(pos, "positive activations", layer)
    neg = as_float64(neg, "negative activations", layer)
    if len(pos) == 0 or len(neg) == 0:
        raise PairDataError(
            f"empty contrast data: {len(pos)} positive and {len(neg)} negative examples; "
            "pass at least 2 of each"
        )
    if pos.shape[1] != neg.shape[1]:
        raise PairDataError(
            f"positive and negative activations have different widths "
            f"({pos.shape[1]} vs {neg.shape[1]}); they must come from the same site"
        )
    if paired and len(pos) != len(neg):
        raise PairDataError(
            f"unequal pair counts: {len(pos)} positive vs {len(neg)} negative; paired methods "
            "need one negative per positive (or use an unpaired method such as cluster_mean)"
        )
    check_k(k, pos.shape[1])
    n = min(len(pos), len(neg))
    if n < 2 or n < k:
        raise PairDataError(
            f"too few examples: {n} per class, need at least max(2, k={k}); add more pairs"
        )
    return pos, neg


def check_k(k: object, width: int | None = None) -> int:
    """``k`` (the number of components) must be an int in 1..hidden size."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise PairDataError(f"k (the number of components) must be an integer >= 1, got {k!r}")
    if width is not None and k > width:
        raise PairDataError(
            f"k={k} components but the activations have only {width} dimensions; pass k <= {width}"
        )
    return int(k)


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n == 0:
        return np.zeros_like(v)
    return v / n


def write_from_read(r: np.ndarray, delta_mean: np.ndarray) -> np.ndarray:
    """Scale a unit direction to diff units: ``(r . mean_diff) r``."""
    return float(r @ delta_mean) * r


def haufe_pattern(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Haufe et al. (2014) activation pattern ``Sigma r / ||Sigma r||`` without forming Sigma."""
    xc = x - x.mean(0)
    return unit(xc.T @ (xc @ r) / max(len(x) - 1, 1))


def signed_by_delta(v: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Flip v so that mean(delta . v) > 0 (ties -> +1)."""
    return v if float((delta @ v).mean()) >= 0 else -v


def repe_sign(v: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> int:
    """RepE sign: +1 if the positive item is the group max more often than the group min."""
    sp, sn = pos @ v, neg @ v
    if len(sp) == len(sn):
        is_max = np.mean(sp > sn)
        is_min = np.mean(sp < sn)
    else:  # unpaired: compare class means
        is_max, is_min = float(sp.mean()), float(sn.mean())
    return 1 if is_max >= is_min else -1


def seeded_rng(seed: int, layer: int) -> np.random.Generator:
    h = hashlib.blake2b(f"{seed}:{layer}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(h, "little"))


def shrunk_solve(xc: np.ndarray, b: np.ndarray, shrink: float, target: float) -> np.ndarray:
    """Solve ``((1-a) S + a*t I) f = b`` with ``S = xc^T xc / n`` and no D x D matrix when n < D.

    Uses the Woodbury identity in the n x n Gram matrix when n < D (or D > 4096).
    """
    n, d = xc.shape
    lam = shrink * target
    c = (1.0 - shrink) / n
    if lam <= 0:
        lam = 1e-12 * max(target, 1e-12)
    if n < d or d > 4096:
        gram = c * (xc @ xc.T)
        inner = np.linalg.solve(lam * np.eye(n) + gram, xc @ b)
        return (b - c * (xc.T @ inner)) / lam
    cov = c * (xc.T @ xc) + lam * np.eye(d)
    return np.linalg.solve(cov, b)
