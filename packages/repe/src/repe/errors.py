"""Exception types: every bad input raises one of these with the problem and the fix."""

from __future__ import annotations


class RepeError(ValueError):
    """Base class for repe's bad-input errors (a ValueError, so callers may catch either)."""


class PairDataError(RepeError):
    """Contrast data is empty, unbalanced or otherwise unusable."""


class LayerError(RepeError):
    """A layer index is out of range or duplicated."""


class VectorMismatchError(RepeError):
    """A stored vector does not fit the model it is applied to."""


class VectorFileError(RepeError):
    """A vector file is corrupt or is missing a metadata key."""


class UnknownNameError(RepeError):
    """An unknown method, operator, position or unit name."""


class NonFiniteActivationError(RepeError):
    """Activations contain NaN or Inf."""


def unknown(kind: str, name: object, valid: object) -> UnknownNameError:
    names = ", ".join(sorted(str(v) for v in valid))
    return UnknownNameError(f"unknown {kind} {name!r}; valid {kind}s are: {names}")
