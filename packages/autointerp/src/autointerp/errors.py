"""Checks of user-supplied settings: a bad value is refused up front with an error that names the
setting, the value and the fix (never a traceback from deep inside numpy or a silently empty run)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable


class ConfigError(ValueError):
    """A setting (config field or constructor argument) has a value autointerp cannot use."""


def check_int(where: str, name: str, value: object, minimum: int, hint: str = "") -> int:
    """``value`` as an int >= ``minimum``; otherwise a :class:`ConfigError` naming ``where.name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{where}: {name} must be an integer, got {value!r}")
    if value < minimum:
        fix = f" ({hint})" if hint else ""
        raise ConfigError(f"{where}: {name} must be >= {minimum}, got {value}{fix}")
    return int(value)


def check_choice(where: str, name: str, value: object, valid: Iterable[str]) -> str:
    valid = tuple(valid)
    if value not in valid:
        raise ConfigError(f"{where}: unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value  # type: ignore[return-value]
