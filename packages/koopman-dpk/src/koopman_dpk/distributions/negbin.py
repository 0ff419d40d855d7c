"""Negative binomial head: mean m (log link), dispersion r (softplus); var = m + m^2 / r."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from .base import Distribution, Params, TorchParams, inverse_softplus, log_mean, positive
from .poisson import check_counts


class NegBin(Distribution):
    name = "negbin"
    param_names = ("mean", "dispersion")
    discrete = True
    scaling = "none"
    log_link = True

    def link(self, raw: list[torch.Tensor]) -> TorchParams:
        return {"mean": log_mean(raw[0]), "dispersion": positive(raw[1])}

    def nll_torch(self, params: TorchParams, y: torch.Tensor) -> torch.Tensor:
        m, r = params["mean"], params["dispersion"]
        return -(
            torch.lgamma(y + r)
            - torch.lgamma(r)
            - torch.lgamma(y + 1.0)
            + r * torch.log(r / (r + m))
            + y * torch.log(m / (r + m))
        )

    def init_raw(self, y_scaled: np.ndarray) -> np.ndarray:
        m = np.maximum(y_scaled.mean(0), 1e-3)
        excess = np.maximum(y_scaled.var(0) - m, 1e-3 * m)
        r = np.clip(m**2 / excess, 0.1, 1e3)
        return np.stack([np.log(m), inverse_softplus(r)])

    def check_support(self, y: np.ndarray) -> None:
        check_counts(y, self.name)

    def unscale(self, params: Params, center: np.ndarray, scale: np.ndarray) -> Params:
        return dict(params)

    def _frozen(self, p: Params):
        r = p["dispersion"]
        return stats.nbinom(n=r, p=r / (r + p["mean"]))

    def logpdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).logpmf(y)

    def cdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).cdf(y)

    def ppf(self, params: Params, q: np.ndarray) -> np.ndarray:
        return self._frozen(params).ppf(q)

    def mean(self, params: Params) -> np.ndarray:
        return np.asarray(params["mean"], dtype=float)

    def var(self, params: Params) -> np.ndarray:
        return params["mean"] + params["mean"] ** 2 / params["dispersion"]

    def sample(self, params: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        r = params["dispersion"]
        p = r / (r + params["mean"])
        shape = (n, *np.shape(params["mean"]))
        return rng.negative_binomial(np.broadcast_to(r, shape), np.broadcast_to(p, shape)).astype(
            float
        )
