"""Student-t head: location mu, scale s, degrees of freedom nu = 2 + softplus (init ~ 10)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from .base import Distribution, Params, TorchParams, inverse_softplus, positive


class StudentT(Distribution):
    name = "studentt"
    param_names = ("mu", "s", "nu")

    def link(self, raw: list[torch.Tensor]) -> TorchParams:
        return {"mu": raw[0], "s": positive(raw[1]), "nu": 2.0 + positive(raw[2])}

    def nll_torch(self, params: TorchParams, y: torch.Tensor) -> torch.Tensor:
        nu, s = params["nu"], params["s"]
        z = (y - params["mu"]) / s
        return (
            torch.lgamma(nu / 2.0)
            - torch.lgamma((nu + 1.0) / 2.0)
            + 0.5 * torch.log(nu * math.pi)
            + torch.log(s)
            + (nu + 1.0) / 2.0 * torch.log1p(z * z / nu)
        )

    def init_raw(self, y_scaled: np.ndarray) -> np.ndarray:
        # nu = 10: scale so that the t sd (s * sqrt(nu/(nu-2))) matches the sample sd
        sd = y_scaled.std(0) + 1e-3
        return np.stack(
            [
                y_scaled.mean(0),
                inverse_softplus(sd * math.sqrt(0.8)),
                inverse_softplus(np.full_like(sd, 8.0)),
            ]
        )

    def _frozen(self, p: Params):
        return stats.t(df=p["nu"], loc=p["mu"], scale=p["s"])

    def logpdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).logpdf(y)

    def cdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        return self._frozen(params).cdf(y)

    def ppf(self, params: Params, q: np.ndarray) -> np.ndarray:
        return self._frozen(params).ppf(q)

    def mean(self, params: Params) -> np.ndarray:
        return np.asarray(params["mu"], dtype=float)

    def var(self, params: Params) -> np.ndarray:
        nu = np.asarray(params["nu"], dtype=float)
        return params["s"] ** 2 * nu / (nu - 2.0)

    def sample(self, params: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = (n, *np.shape(params["mu"]))
        return params["mu"] + params["s"] * rng.standard_t(np.broadcast_to(params["nu"], shape))
