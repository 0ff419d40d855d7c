"""Distribution heads: links, exact NLLs (torch) and the numpy/scipy side used by forecasts.

Every distribution works in two spaces:

* *scaled* space, where the network is trained (real y standardised with training statistics,
  Gamma y divided by its training mean, counts left raw); and
* *original* units, where forecasts live.  `unscale` maps parameters from one to the other and
  `log_jacobian` is the constant that turns a scaled-space NLL into an original-units NLL.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

Params = dict[str, np.ndarray]
TorchParams = dict[str, torch.Tensor]

POSITIVE_FLOOR = 1e-4
LOG_MEAN_CLAMP = 20.0
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def positive(raw: torch.Tensor) -> torch.Tensor:
    """softplus + 1e-4: the link of every positive parameter."""
    return F.softplus(raw) + POSITIVE_FLOOR


def log_mean(raw: torch.Tensor) -> torch.Tensor:
    """exp(eta) with eta clamped at <= 20: the link of log-mean parameters."""
    return torch.exp(torch.clamp(raw, max=LOG_MEAN_CLAMP))


def inverse_softplus(x: np.ndarray | float) -> np.ndarray:
    """Raw value whose `positive` link gives x (x > 1e-4)."""
    v = np.maximum(np.asarray(x, dtype=float) - POSITIVE_FLOOR, 1e-8)
    return v + np.log(-np.expm1(-v))


class Distribution(ABC):
    """One predictive family. Subclasses define links, NLL and the numpy-side functions."""

    name: ClassVar[str]
    param_names: ClassVar[tuple[str, ...]]
    discrete: ClassVar[bool] = False
    #: "standard" (centre and scale), "mean" (divide by the mean) or "none" (counts)
    scaling: ClassVar[str] = "standard"
    #: True if the location head is a log-mean (the trend then acts on the log scale)
    log_link: ClassVar[bool] = False
    #: False for the deterministic (MSE) mode, whose quantiles need conformal calibration
    probabilistic: ClassVar[bool] = True

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    # ---------------------------------------------------------------- torch side
    @abstractmethod
    def link(self, raw: list[torch.Tensor]) -> TorchParams:
        """Map the heads' raw outputs (one tensor per parameter) to constrained parameters."""

    @abstractmethod
    def nll_torch(self, params: TorchParams, y: torch.Tensor) -> torch.Tensor:
        """Exact pointwise negative log-likelihood in scaled space (no constants dropped)."""

    @abstractmethod
    def init_raw(self, y_scaled: np.ndarray) -> np.ndarray:
        """Raw last-layer biases (n_params, d) matching the training marginal of y_scaled (T, d)."""

    def check_support(self, y: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Raise DPKInputError if y lies outside the support (default: any real)."""

    # ---------------------------------------------------------------- scaling
    def unscale(self, params: Params, center: np.ndarray, scale: np.ndarray) -> Params:
        """Scaled-space parameters -> original units (default: location-scale family)."""
        out = dict(params)
        loc, sc = self.param_names[0], self.param_names[1] if self.n_params > 1 else None
        out[loc] = params[loc] * scale + center
        if sc is not None:
            out[sc] = params[sc] * scale
        return out

    def log_jacobian(self, scale: np.ndarray) -> np.ndarray:
        """log|dy/dy_scaled|: add to a scaled NLL to get the NLL in original units."""
        return np.zeros_like(scale) if self.discrete else np.log(scale)

    # ---------------------------------------------------------------- numpy side (original units)
    @abstractmethod
    def logpdf(self, params: Params, y: np.ndarray) -> np.ndarray:
        """log density (log pmf for discrete families)."""

    @abstractmethod
    def cdf(self, params: Params, y: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def ppf(self, params: Params, q: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def mean(self, params: Params) -> np.ndarray: ...

    @abstractmethod
    def var(self, params: Params) -> np.ndarray: ...

    @abstractmethod
    def sample(self, params: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws, shape (n, *param_shape)."""

    def nll(self, params: Params, y: np.ndarray) -> np.ndarray:
        return -self.logpdf(params, y)
