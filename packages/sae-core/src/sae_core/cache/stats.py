"""Per-latent firing statistics accumulated during caching."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LatentStats:
    """count, sum, sumsq, max, min per latent over ``n_recorded`` recorded tokens."""

    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray
    max: np.ndarray
    min: np.ndarray
    n_recorded: int

    @classmethod
    def zeros(cls, n: int) -> LatentStats:
        return cls(
            np.zeros(n, np.int64),
            np.zeros(n, np.float64),
            np.zeros(n, np.float64),
            np.zeros(n, np.float32),
            np.zeros(n, np.float32),
            0,
        )

    def update(self, lat: np.ndarray, val: np.ndarray, n_tokens: int) -> None:
        n = self.count.size
        self.count += np.bincount(lat, minlength=n)
        v64 = val.astype(np.float64)
        self.sum += np.bincount(lat, weights=v64, minlength=n)
        self.sumsq += np.bincount(lat, weights=v64 * v64, minlength=n)
        if lat.size:
            np.maximum.at(self.max, lat, val) if lat.size < 64 else _segment_extreme(
                self.max, lat, val, np.maximum
            )
            np.minimum.at(self.min, lat, val) if lat.size < 64 else _segment_extreme(
                self.min, lat, val, np.minimum
            )
        self.n_recorded += int(n_tokens)

    # ---- derived
    @property
    def n_latents(self) -> int:
        return int(self.count.size)

    @property
    def frequency(self) -> np.ndarray:
        return self.count / max(self.n_recorded, 1)

    @property
    def mean(self) -> np.ndarray:
        """Mean activation when firing."""
        return self.sum / np.maximum(self.count, 1)

    def fraction_alive(self) -> float:
        return float((self.count > 0).mean())

    def fraction_above(self, freq: float) -> float:
        return float((self.frequency > freq).mean())

    def log10_density(self, eps: float = 1e-10) -> np.ndarray:
        """SAELens-style ``sparsity`` (log10 firing frequency)."""
        return np.log10(self.frequency + eps)

    def density_histogram(self, bins: int = 40, lo: float = -8.0) -> tuple[np.ndarray, np.ndarray]:
        return np.histogram(np.maximum(self.log10_density(), lo), bins=bins, range=(lo, 0.0))

    def summary(self) -> dict[str, float]:
        return {
            "n_latents": self.n_latents,
            "n_recorded": self.n_recorded,
            "fraction_alive": self.fraction_alive(),
            "fraction_above_1pct": self.fraction_above(0.01),
            "fraction_above_10pct": self.fraction_above(0.1),
            "mean_l0": float(self.count.sum() / max(self.n_recorded, 1)),
        }

    def state(self) -> dict[str, np.ndarray]:
        return {
            "count": self.count,
            "sum": self.sum,
            "sumsq": self.sumsq,
            "max": self.max,
            "min": self.min,
            "n_recorded": np.asarray(self.n_recorded, np.int64),
        }

    @classmethod
    def from_state(cls, d) -> LatentStats:
        return cls(
            np.array(d["count"]),
            np.array(d["sum"]),
            np.array(d["sumsq"]),
            np.array(d["max"]),
            np.array(d["min"]),
            int(d["n_recorded"]),
        )


def _segment_extreme(target: np.ndarray, lat: np.ndarray, val: np.ndarray, op) -> None:
    order = np.argsort(lat, kind="stable")
    sl = lat[order]
    starts = np.flatnonzero(np.r_[True, sl[1:] != sl[:-1]])
    red = op.reduceat(val[order], starts)
    target[sl[starts]] = op(target[sl[starts]], red)
