"""Deterministic (MSE) mode: one parameter mu, loss (y - mu)^2.

It has no likelihood of its own; quantiles, CDF and PIT need split-conformal calibration
(`DPK(conformal=True)`), which the Forecast applies from validation residuals.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DPKInputError
from .base import Distribution, Params, TorchParams


class MSE(Distribution):
    name = "mse"
    param_names = ("mu",)
    probabilistic = False

    def link(self, raw: list[torch.Tensor]) -> TorchParams:
        return {"mu": raw[0]}

    def nll_torch(self, params: TorchParams, y: torch.Tensor) -> torch.Tensor:
        d = y - params["mu"]
        return d * d

    def init_raw(self, y_scaled: np.ndarray) -> np.ndarray:
        return y_scaled.mean(0)[None, :]

    def unscale(self, params: Params, center: np.ndarray, scale: np.ndarray) -> Params:
        return {"mu": params["mu"] * scale + center}

    def log_jacobian(self, scale: np.ndarray) -> np.ndarray:
        return np.zeros_like(scale)

    @staticmethod
    def _no_distribution(what: str):
        raise DPKInputError(
            f"distribution='mse' is deterministic and has no {what}; fit with conformal=True "
            "to get calibrated quantiles/CDF, or choose a probabilistic distribution such as 'normal'."
        )

    def logpdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        self._no_distribution("likelihood")

    def cdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        self._no_distribution("CDF")

    def ppf(self, params: Params, q: np.ndarray) -> np.ndarray:
        self._no_distribution("quantiles")

    def mean(self, params: Params) -> np.ndarray:
        return np.asarray(params["mu"], dtype=float)

    def var(self, params: Params) -> np.ndarray:
        return np.zeros_like(np.asarray(params["mu"], dtype=float))

    def sample(self, params: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.broadcast_to(params["mu"], (n, *np.shape(params["mu"]))).copy()
