"""Normal head: mu (identity), sigma (softplus)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from .base import HALF_LOG_2PI, Distribution, Params, TorchParams, inverse_softplus, positive


class Normal(Distribution):
    name = "normal"
    param_names = ("mu", "sigma")

    def link(self, raw: list[torch.Tensor]) -> TorchParams:
        return {"mu": raw[0], "sigma": positive(raw[1])}

    def nll_torch(self, params: TorchParams, y: torch.Tensor) -> torch.Tensor:
        z = (y - params["mu"]) / params["sigma"]
        return torch.log(params["sigma"]) + HALF_LOG_2PI + 0.5 * z * z

    def init_raw(self, y_scaled: np.ndarray) -> np.ndarray:
        return np.stack([y_scaled.mean(0), inverse_softplus(y_scaled.std(0) + 1e-3)])

    def _frozen(self, p: Params):
        return stats.norm(loc=p["mu"], scale=p["sigma"])

    def logpdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).logpdf(y)

    def cdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).cdf(y)

    def ppf(self, params: Params, q: np.ndarray) -> np.ndarray:
        return self._frozen(params).ppf(q)

    def mean(self, params: Params) -> np.ndarray:
        return np.asarray(params["mu"], dtype=float)

    def var(self, params: Params) -> np.ndarray:
        return np.asarray(params["sigma"], dtype=float) ** 2

    def sample(self, params: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = (n, *np.shape(params["mu"]))
        return params["mu"] + params["sigma"] * rng.standard_normal(shape)
