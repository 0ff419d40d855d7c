"""Exceptions raised by the LLM client layer.

Every error names the problem and, where there is one, the fix. None of them ever carries
an API key.
"""

from __future__ import annotations


class LLMError(Exception):
    """Base class of every error raised by ``lm_kit.llm``."""


class MissingAPIKey(LLMError, ValueError):
    """The environment variable that should hold the API key is unset or empty."""

    def __init__(self, env_var: str, base_url: str) -> None:
        self.env_var = env_var
        super().__init__(
            f"no API key: environment variable {env_var} is unset or empty (needed for {base_url}). "
            f"Fix: `export {env_var}=...`, or pass api_key_env='OTHER_VAR'. "
            "A loopback server (127.0.0.1/localhost) accepts the value EMPTY."
        )


class LLMHTTPError(LLMError):
    """The server answered with an error status that is not worth retrying (400/401/403/404/422...)."""

    def __init__(self, status: int, message: str, *, attempts: int = 1) -> None:
        self.status = status
        self.attempts = attempts
        super().__init__(
            f"HTTP {status} from the server (attempt {attempts}, not retried): {message}"
        )


class RetriesExhausted(LLMError):
    """Every attempt allowed by the retry policy failed with a retryable error."""

    def __init__(self, attempts: int, last_error: str) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            f"request failed after {attempts} attempts (retry budget exhausted); last error: "
            f"{last_error}. Fix: check the server, or raise RetryPolicy(max_attempts=...)."
        )


class RateLimited(LLMError):
    """The server asked us to wait longer than ``RetryPolicy.max_retry_after``; raised at once."""

    def __init__(self, wait_s: float, max_retry_after: float, *, attempts: int = 1) -> None:
        self.wait_s = wait_s
        self.attempts = attempts
        super().__init__(
            f"rate limited: the server asked to retry after {wait_s:.0f} s, above the "
            f"max_retry_after of {max_retry_after:.0f} s, so we stop now instead of hanging. "
            "Fix: lower the request rate (rpm=/tpm=/max_concurrency=) or raise "
            "RetryPolicy(max_retry_after=...)."
        )


class LLMTimeoutError(LLMError, TimeoutError):
    """Every attempt timed out."""

    def __init__(self, attempts: int, timeout_s: float | None) -> None:
        self.attempts = attempts
        super().__init__(
            f"request timed out on all {attempts} attempts (timeout {timeout_s} s). "
            "Fix: raise timeout= on the client or check that the server is alive."
        )


class CacheMiss(LLMError, KeyError):
    """``cache_mode='only'`` and the response is not in the cache."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "cache miss"


class JSONOutputError(LLMError, ValueError):
    """The model did not produce valid JSON for the requested schema, even after re-asking."""

    def __init__(self, raw: str, reason: str, *, attempts: int = 1) -> None:
        self.raw = raw
        self.reason = reason
        self.attempts = attempts
        shown = raw if len(raw) <= 300 else raw[:300] + "..."
        super().__init__(
            f"no valid JSON output after {attempts} tries: {reason}. Last raw output: {shown!r}. "
            "Fix: raise max_tokens, simplify the schema, or use a stronger model."
        )


class LogprobsUnavailable(LLMError):
    """Logprobs were requested but the server's response has none."""

    def __init__(self, model: str, endpoint: str) -> None:
        super().__init__(
            f"logprobs were requested but the server returned none for model {model!r} "
            f"({endpoint}). Fix: use a server/model that supports logprobs (e.g. vLLM, OpenAI "
            "chat models), or set GenParams(logprobs=False)."
        )
