"""Registry of distribution heads."""

from __future__ import annotations

from ..errors import DPKInputError
from .base import Distribution
from .cmp import CMP
from .gamma import Gamma
from .mse import MSE
from .negbin import NegBin
from .normal import Normal
from .poisson import Poisson
from .skewnormal import SkewNormal
from .studentt import StudentT

REGISTRY: dict[str, type[Distribution]] = {
    cls.name: cls for cls in (Normal, SkewNormal, StudentT, Gamma, Poisson, NegBin, CMP, MSE)
}
ALIASES = {
    "student_t": "studentt",
    "t": "studentt",
    "nb": "negbin",
    "negative_binomial": "negbin",
    "deterministic": "mse",
    "skew_normal": "skewnormal",
    "conway_maxwell_poisson": "cmp",
    "gaussian": "normal",
}


def get_distribution(name: str | Distribution) -> Distribution:
    """Instance of the named distribution; the error lists the registry."""
    if isinstance(name, Distribution):
        return name
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in REGISTRY:
        raise DPKInputError(f"unknown distribution {name!r}; choose one of {sorted(REGISTRY)}")
    return REGISTRY[key]()


__all__ = [
    "Distribution",
    "Normal",
    "SkewNormal",
    "StudentT",
    "Gamma",
    "Poisson",
    "NegBin",
    "CMP",
    "MSE",
    "REGISTRY",
    "get_distribution",
]
