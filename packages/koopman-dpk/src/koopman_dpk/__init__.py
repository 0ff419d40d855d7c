"""Deep Probabilistic Koopman forecasting: periodic, long-horizon, calibrated predictive distributions."""

__version__ = "0.1.0"

from .distributions import REGISTRY as DISTRIBUTIONS  # noqa: E402
from .distributions import get_distribution  # noqa: E402
from .ensemble import DPKEnsemble  # noqa: E402
from .errors import (  # noqa: E402
    DPKDivergenceError,
    DPKError,
    DPKInputError,
    DPKNotFittedError,
    DPKPersistenceError,
)
from .forecast import Forecast  # noqa: E402
from .freqsearch import find_periods, initial_periods, search_slot  # noqa: E402
from .model import DPK, DPKConfig  # noqa: E402

__all__ = [
    "DPK",
    "DPKConfig",
    "DPKEnsemble",
    "Forecast",
    "DISTRIBUTIONS",
    "get_distribution",
    "find_periods",
    "initial_periods",
    "search_slot",
    "DPKError",
    "DPKInputError",
    "DPKDivergenceError",
    "DPKNotFittedError",
    "DPKPersistenceError",
    "__version__",
]
