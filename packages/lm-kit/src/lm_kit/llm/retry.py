"""Retry policy: which failures to retry, how long to wait, when to give up.

- Retried: connection errors, timeouts, HTTP 408/409/429/5xx, ``x-should-retry: true``,
  malformed response bodies.
- Never retried: 400/401/403/404/422 (and ``x-should-retry: false``).
- Wait: ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date) when the server sends
  one; above ``max_retry_after`` -> :class:`RateLimited` at once. Otherwise full jitter,
  ``U(0, min(cap, base * 2**attempt))``.
- At most ``max_attempts`` attempts in all.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

NEVER_RETRY = frozenset({400, 401, 403, 404, 422})
ALWAYS_RETRY = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base < 0 or self.cap < 0 or self.max_retry_after < 0:
            raise ValueError("base, cap and max_retry_after must be >= 0")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter delay after failed attempt number ``attempt`` (0-based)."""
        hi = min(self.cap, self.base * (2.0**attempt))
        return (rng or random).uniform(0.0, hi)


def should_retry_status(status: int, headers: Mapping[str, str] | None = None) -> bool:
    hint = _header(headers, "x-should-retry")
    if hint is not None:
        if hint.strip().lower() == "true":
            return True
        if hint.strip().lower() == "false":
            return False
    if status in NEVER_RETRY:
        return False
    return status in ALWAYS_RETRY or status >= 500


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        for k, v in headers.items():
            if k.lower() == name:
                return v
    return value


def retry_after_seconds(
    headers: Mapping[str, str] | None, now: float | None = None
) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``Retry-After``; else None."""
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    ra = _header(headers, "retry-after")
    if ra is None:
        return None
    ra = ra.strip()
    try:
        return max(float(ra), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
