"""Exception types raised on bad input; every message names the problem and the fix."""

from __future__ import annotations


class SAECoreError(ValueError):
    """Base class of sae-core input errors."""


class ConfigError(SAECoreError):
    """A coder config (cfg.json / config.json) is missing a field or has an invalid value."""


class ShapeError(SAECoreError):
    """A weight tensor or an activation has the wrong shape, dtype or non-finite values."""


class FormatError(SAECoreError):
    """A folder is not in a recognised SAE layout, or matches more than one."""


class CacheError(SAECoreError):
    """A latent cache cannot be written, resumed or read."""


class LatentIndexError(CacheError, IndexError):
    """A latent, row or token index outside a cache's range (also an :class:`IndexError`)."""
