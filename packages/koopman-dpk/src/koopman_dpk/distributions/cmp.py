"""Conway-Maxwell-Poisson head (the research repo's count head): under- and over-dispersed counts.

P(Y = y) = lambda^y / (y!)^nu / Z(lambda, nu), Z = sum_j lambda^j / (j!)^nu.

Parameterised by mu (log link) and nu (softplus + 0.05) with lambda = mu^nu, so that
log lambda = nu log mu: mu is close to the mean (mean ~ mu + 1/(2 nu) - 1/2 for large mu),
the trend and the intercept correction act on log mu as on the Poisson log-rate, and nu = 1 is
the Poisson with rate mu. nu > 1 is under-dispersed (var ~ mu / nu), nu < 1 over-dispersed.
The floor 0.05 keeps Z from converging arbitrarily slowly. Z is summed exactly (in log space)
over j = 0..J with J far past the mass (see `_support_max`); numpy-side pmf, CDF, quantiles,
mean, variance and sampling use the same truncated support.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

from .base import Distribution, Params, TorchParams, inverse_softplus, log_mean
from .poisson import check_counts

NU_FLOOR = 0.05
J_CAP = 20_000


def _support_max(mu_max: float, nu_min: float, y_max: float = 0.0) -> int:
    """Truncation point: mean + 12 sd (sd ~ sqrt(mu / nu)) plus a margin for small nu."""
    mu_max = max(float(mu_max), 1e-3)
    nu_min = max(float(nu_min), NU_FLOOR)
    j = mu_max + 12.0 * math.sqrt(mu_max / nu_min + 1.0) + 20.0 / nu_min + 10.0
    return int(min(max(j, 2.0 * y_max + 10.0), J_CAP))


def log_z_torch(log_mu: torch.Tensor, nu: torch.Tensor, j_max: int) -> torch.Tensor:
    j = torch.arange(j_max + 1, dtype=log_mu.dtype, device=log_mu.device)
    terms = nu[..., None] * (j * log_mu[..., None] - torch.lgamma(j + 1.0))
    return torch.logsumexp(terms, dim=-1)


class CMP(Distribution):
    name = "cmp"
    param_names = ("mu", "nu")
    discrete = True
    scaling = "none"
    log_link = True

    def link(self, raw: list[torch.Tensor]) -> TorchParams:
        return {"mu": log_mean(raw[0]), "nu": F.softplus(raw[1]) + NU_FLOOR}

    def nll_torch(self, params: TorchParams, y: torch.Tensor) -> torch.Tensor:
        mu, nu = params["mu"], params["nu"]
        log_mu = torch.log(mu)
        j_max = _support_max(
            float(mu.detach().max()), float(nu.detach().min()), float(y.detach().max())
        )
        log_z = log_z_torch(log_mu, nu, j_max)
        return -(nu * (y * log_mu - torch.lgamma(y + 1.0)) - log_z)

    def init_raw(self, y_scaled: np.ndarray) -> np.ndarray:
        m = np.maximum(y_scaled.mean(0), 1e-3)
        ratio = np.clip(m / np.maximum(y_scaled.var(0), 1e-3), 0.1, 10.0)  # nu ~ mean / var
        return np.stack([np.log(m), inverse_softplus(np.maximum(ratio - NU_FLOOR, 1e-3))])

    def check_support(self, y: np.ndarray) -> None:
        check_counts(y, self.name)

    def unscale(self, params: Params, center: np.ndarray, scale: np.ndarray) -> Params:
        return dict(params)

    # ---------------------------------------------------------------- numpy side
    def _log_pmf_grid(self, p: Params, y_max: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(j, log pmf) with j of shape (J+1,) and log pmf of shape (J+1, *param_shape)."""
        mu = np.asarray(p["mu"], dtype=float)
        nu = np.asarray(p["nu"], dtype=float)
        j = np.arange(_support_max(mu.max(), nu.min(), y_max) + 1, dtype=float)
        shape = (-1,) + (1,) * mu.ndim
        terms = nu[None] * (
            j.reshape(shape) * np.log(mu)[None] - special.gammaln(j + 1).reshape(shape)
        )
        return j, terms - special.logsumexp(terms, axis=0, keepdims=True)

    def logpdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        mu = np.asarray(params["mu"], dtype=float)
        nu = np.asarray(params["nu"], dtype=float)
        y = np.asarray(y, dtype=float)
        j = np.arange(_support_max(mu.max(), nu.min(), float(np.max(y, initial=0.0))) + 1.0)
        shape = (-1,) + (1,) * mu.ndim
        terms = nu[None] * (
            j.reshape(shape) * np.log(mu)[None] - special.gammaln(j + 1).reshape(shape)
        )
        log_z = special.logsumexp(terms, axis=0)
        out = nu * (y * np.log(mu) - special.gammaln(np.maximum(y, 0) + 1)) - log_z
        ok = (y >= 0) & (y == np.round(y))
        return np.where(ok, out, -np.inf)

    def _cdf_grid(self, p: Params, y_max: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        j, lp = self._log_pmf_grid(p, y_max)
        return j, np.minimum(np.cumsum(np.exp(lp), axis=0), 1.0)

    def cdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        j, c = self._cdf_grid(params, float(np.max(y, initial=0.0)))
        k = np.floor(np.broadcast_to(y, c.shape[1:]))
        idx = np.clip(k, 0, len(j) - 1).astype(int)
        out = np.take_along_axis(c, idx[None], axis=0)[0]
        return np.where(k < 0, 0.0, out)

    def ppf(self, params: Params, q: np.ndarray) -> np.ndarray:
        j, c = self._cdf_grid(params)
        qb = np.broadcast_to(np.asarray(q, dtype=float), c.shape[1:])
        # smallest k with F(k) >= q (a tiny tolerance for the cumulative rounding)
        k = np.sum(c < qb[None] - 1e-12, axis=0)
        return np.minimum(k, len(j) - 1).astype(float)

    def mean(self, params: Params) -> np.ndarray:
        j, lp = self._log_pmf_grid(params)
        return np.tensordot(j, np.exp(lp), axes=(0, 0))

    def var(self, params: Params) -> np.ndarray:
        j, lp = self._log_pmf_grid(params)
        pmf = np.exp(lp)
        m = np.tensordot(j, pmf, axes=(0, 0))
        return np.maximum(np.tensordot(j**2, pmf, axes=(0, 0)) - m**2, 0.0)

    def sample(self, params: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = np.shape(params["mu"])
        u = rng.uniform(size=(n, *shape))
        return np.stack([self.ppf(params, ui) for ui in u])
