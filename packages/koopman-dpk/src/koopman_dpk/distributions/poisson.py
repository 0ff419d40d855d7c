"""Poisson head: rate lambda (log link). Counts are modelled raw (no scaling)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from ..errors import DPKInputError
from .base import Distribution, Params, TorchParams, log_mean


def check_counts(y: np.ndarray, name: str) -> None:
    """Raise DPKInputError unless every y is a non-negative integer."""
    flat = y.reshape(len(y), -1)
    bad = (flat < 0) | (flat != np.round(flat))
    rows = bad.any(axis=1)
    if rows.any():
        first = int(np.argmax(rows))
        raise DPKInputError(
            f"distribution='{name}' needs non-negative integer counts, but {int(bad.sum())} "
            f"value(s) are negative or fractional (first at index {first}: {flat[first].tolist()}). "
            "Clean the counts, or use distribution='normal'/'gamma' for real-valued data."
        )


class Poisson(Distribution):
    name = "poisson"
    param_names = ("rate",)
    discrete = True
    scaling = "none"
    log_link = True

    def link(self, raw: list[torch.Tensor]) -> TorchParams:
        return {"rate": log_mean(raw[0])}

    def nll_torch(self, params: TorchParams, y: torch.Tensor) -> torch.Tensor:
        lam = params["rate"]
        return lam - y * torch.log(lam) + torch.lgamma(y + 1.0)

    def init_raw(self, y_scaled: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(y_scaled.mean(0), 1e-3))[None, :]

    def check_support(self, y: np.ndarray) -> None:
        check_counts(y, self.name)

    def unscale(self, params: Params, center: np.ndarray, scale: np.ndarray) -> Params:
        return dict(params)

    def _frozen(self, p: Params):
        return stats.poisson(mu=p["rate"])

    def logpdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).logpmf(y)

    def cdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).cdf(y)

    def ppf(self, params: Params, q: np.ndarray) -> np.ndarray:
        return self._frozen(params).ppf(q)

    def mean(self, params: Params) -> np.ndarray:
        return np.asarray(params["rate"], dtype=float)

    def var(self, params: Params) -> np.ndarray:
        return np.asarray(params["rate"], dtype=float)

    def sample(self, params: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(params["rate"], size=(n, *np.shape(params["rate"]))).astype(float)
