"""Error types. Every message names the problem and the fix."""

from __future__ import annotations


class AnomalyError(ValueError):
    """Base class for bad input or configuration in koopman_anomaly."""


class InvalidDataError(AnomalyError):
    """The input data cannot be used as given (dims, time axis, units, variables)."""


class ConfigError(AnomalyError):
    """The detector configuration is inconsistent (periods, alpha, window length)."""
