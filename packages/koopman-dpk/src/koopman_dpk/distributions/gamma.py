"""Gamma head: mean m (log link), shape k (softplus); rate beta = k / m.

Trained on y divided by its training mean, so the scale enters only through m.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from ..errors import DPKInputError
from .base import Distribution, Params, TorchParams, inverse_softplus, log_mean, positive


class Gamma(Distribution):
    name = "gamma"
    param_names = ("mean", "shape")
    scaling = "mean"
    log_link = True

    def link(self, raw: list[torch.Tensor]) -> TorchParams:
        return {"mean": log_mean(raw[0]), "shape": positive(raw[1])}

    def nll_torch(self, params: TorchParams, y: torch.Tensor) -> torch.Tensor:
        k = params["shape"]
        beta = k / params["mean"]
        return -k * torch.log(beta) + torch.lgamma(k) - (k - 1.0) * torch.log(y) + beta * y

    def init_raw(self, y_scaled: np.ndarray) -> np.ndarray:
        m = y_scaled.mean(0)
        shape = m**2 / np.maximum(y_scaled.var(0), 1e-6)  # method of moments: mean^2 / var
        return np.stack([np.log(m), inverse_softplus(np.clip(shape, 0.05, 1e4))])

    def check_support(self, y: np.ndarray) -> None:
        bad = ~(y > 0)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise DPKInputError(
                f"distribution='gamma' needs y > 0, but {int(bad.sum())} value(s) are <= 0 "
                f"(first at index {first}: {y.reshape(len(y), -1)[first].tolist()}). "
                "Drop or floor them, or use distribution='normal'/'skewnormal'."
            )

    def unscale(self, params: Params, center: np.ndarray, scale: np.ndarray) -> Params:
        return {"mean": params["mean"] * scale, "shape": params["shape"]}

    def _frozen(self, p: Params):
        return stats.gamma(a=p["shape"], scale=p["mean"] / p["shape"])

    def logpdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).logpdf(y)

    def cdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).cdf(y)

    def ppf(self, params: Params, q: np.ndarray) -> np.ndarray:
        return self._frozen(params).ppf(q)

    def mean(self, params: Params) -> np.ndarray:
        return np.asarray(params["mean"], dtype=float)

    def var(self, params: Params) -> np.ndarray:
        return params["mean"] ** 2 / params["shape"]

    def sample(self, params: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = (n, *np.shape(params["mean"]))
        k = np.broadcast_to(params["shape"], shape)
        return rng.gamma(k, 1.0, size=shape) * params["mean"] / params["shape"]
