"""Exceptions raised by koopman_dpk. Every message names the problem and the fix."""

from __future__ import annotations


class DPKError(Exception):
    """Base class of every koopman_dpk error."""


class DPKInputError(DPKError, ValueError):
    """Bad data or configuration given by the caller."""


class DPKDivergenceError(DPKError, RuntimeError):
    """Training produced a non-finite loss; the best checkpoint was restored."""


class DPKNotFittedError(DPKError, RuntimeError):
    """A method that needs a fitted model was called before `fit`."""


class DPKPersistenceError(DPKError, ValueError):
    """A saved model directory is missing, incomplete or from a newer schema."""
