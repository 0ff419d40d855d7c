"""OpenAI-compatible HTTP backend on the real ``openai.AsyncOpenAI``.

The SDK does the transport (its own retries are off: ``max_retries=0``); this client adds
the retry policy (honouring ``Retry-After``), a concurrency limit plus optional RPM/TPM
buckets, sharing of identical in-flight requests, the disk cache, usage accounting and a
redacted audit log. The API key is read from the environment variable named by
``api_key_env`` and is never stored on this object, printed, cached or logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import numbers
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai

from lm_kit.llm import jsonout
from lm_kit.llm.audit import AuditLog
from lm_kit.llm.cache import CACHE_MODES, CacheMode, ResponseCache, cache_key_fields, key_of
from lm_kit.llm.client import BaseLLMClient
from lm_kit.llm.errors import (
    LLMHTTPError,
    LLMTimeoutError,
    LogprobsUnavailable,
    MissingAPIKey,
    RateLimited,
    RetriesExhausted,
)
from lm_kit.llm.meter import PriceTable, UsageMeter, current_stage
from lm_kit.llm.ratelimit import TokenBucket
from lm_kit.llm.retry import RetryPolicy, retry_after_seconds, should_retry_status
from lm_kit.llm.types import Completion, GenParams, Message, TokenLogprob

log = logging.getLogger(__name__)


def is_loopback(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str) -> None:
    """Reject URLs that the HTTP stack would only fail on deep inside (no host, bad port)."""
    try:
        parts = urlsplit(base_url)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise ValueError(
            f"base_url {base_url!r} is malformed ({exc}); expected e.g. 'http://127.0.0.1:8000/v1'"
        ) from None
    host = parts.hostname or ""
    del port
    if not host or any(c.isspace() for c in parts.netloc):
        raise ValueError(
            f"base_url {base_url!r} has no valid host; expected e.g. 'http://127.0.0.1:8000/v1' or "
            "'https://api.openai.com/v1'"
        )


class _Retryable(Exception):
    """Internal: one failed attempt that the policy may retry."""

    def __init__(
        self, reason: str, *, headers: Mapping[str, str] | None = None, timeout: bool = False
    ):
        super().__init__(reason)
        self.headers = headers
        self.timeout = timeout


class OpenAICompatClient(BaseLLMClient):
    """Async client for any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, OpenRouter...).

    Args:
        base_url: e.g. ``"https://api.openai.com/v1"`` or ``"http://127.0.0.1:8000/v1"``.
        model: model name sent to the server.
        api_key_env: name of the environment variable holding the key. A loopback
            ``base_url`` without the variable set uses ``"EMPTY"``.
        max_concurrency: requests in flight at once (``asyncio.Semaphore``).
        rpm, tpm: optional requests/tokens per minute buckets (tokens estimated as
            chars/4 + max_tokens).
        cache_dir, cache_mode: disk response cache (``use``/``refresh``/``off``/``only``).
        prices: :class:`PriceTable` or ``{model: {input, output}}`` in $/1M tokens.
        retry: :class:`RetryPolicy`.
        timeout, connect_timeout: seconds per attempt.
        audit_path: optional JSONL audit log (no prompts, outputs or secrets).
    """

    json_modes = ("json_schema", "json_object", "prompt")

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        *,
        max_concurrency: int = 16,
        rpm: float | None = None,
        tpm: float | None = None,
        cache_dir: str | Path | None = None,
        cache_mode: CacheMode = "use",
        prices: PriceTable | Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        audit_path: str | Path | None = None,
        meter: UsageMeter | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        _check_base_url(base_url)
        if not model:
            raise ValueError("model must be a non-empty model name")
        if not isinstance(model, str):
            raise TypeError(
                f"model must be a str (the served model name), got {type(model).__name__}"
            )
        if not isinstance(api_key_env, str) or not api_key_env:
            raise ValueError(
                "api_key_env must be the name of an environment variable, e.g. 'OPENAI_API_KEY', "
                f"got {api_key_env!r}"
            )
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, numbers.Integral):
            raise TypeError(f"max_concurrency must be an int, got {max_concurrency!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        for name, val in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if val is not None and (
                not isinstance(val, (int, float)) or isinstance(val, bool) or not val > 0
            ):
                raise ValueError(f"{name} must be a number of seconds > 0 (or None), got {val!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(
                f"retry must be a RetryPolicy, got {type(retry).__name__}; e.g. "
                "RetryPolicy(max_attempts=3)"
            )
        if cache_dir is None and cache_mode not in CACHE_MODES:
            raise ValueError(
                f"unknown cache mode {cache_mode!r}; use one of {', '.join(CACHE_MODES)}"
            )
        super().__init__(meter if meter is not None else UsageMeter(prices))
        if prices is not None and meter is not None:
            self._meter.prices = prices if isinstance(prices, PriceTable) else PriceTable(prices)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._default_headers = dict(default_headers) if default_headers else None
        self._rpm_limit, self._tpm_limit = rpm, tpm
        self._sdk = self._make_sdk()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bind_loop_state()
        self.cache = ResponseCache(cache_dir, cache_mode) if cache_dir is not None else None
        self.audit = AuditLog(audit_path) if audit_path is not None else None
        self._json_mode_pos = 0

    def _make_sdk(self) -> openai.AsyncOpenAI:
        key = os.environ.get(self.api_key_env, "")
        if not key:
            if not is_loopback(self.base_url):
                raise MissingAPIKey(self.api_key_env, self.base_url)
            key = "EMPTY"
        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=key,
            max_retries=0,
            timeout=openai.Timeout(self.timeout, connect=self._connect_timeout),
            default_headers=self._default_headers,
        )

    def _bind_loop_state(self) -> None:
        self._sem = asyncio.Semaphore(self.max_concurrency)
        self._rpm = TokenBucket(self._rpm_limit) if self._rpm_limit else None
        self._tpm = TokenBucket(self._tpm_limit) if self._tpm_limit else None
        self._inflight: dict[str, tuple[asyncio.Future[Completion], list[int]]] = {}

    def _ensure_loop(self) -> None:
        """Rebind loop-bound state when the client is reused under a new event loop
        (e.g. several ``asyncio.run`` calls in a script or notebook)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None:
            self._sdk = self._make_sdk()  # the old HTTP pool belongs to the old loop
            self._bind_loop_state()
        self._loop = loop

    def __repr__(self) -> str:
        cache = f", cache={self.cache!r}" if self.cache else ""
        return (
            f"OpenAICompatClient(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency}{cache})"
        )

    async def aclose(self) -> None:
        if self._loop is None or self._loop is asyncio.get_running_loop():
            await self._sdk.close()
        else:  # its connections belong to an earlier, finished event loop: just drop them
            self._sdk = self._make_sdk()
            self._loop = None

    # -- request building ----------------------------------------------------------------------
    def _common_body(self, params: GenParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    async def _chat(
        self, messages: list[Message], params: GenParams, json_mode: str | None = None
    ) -> Completion:
        body = self._common_body(params)
        body["messages"] = [m.to_dict() for m in messages]
        if params.logprobs:
            body["logprobs"] = True
            if params.top_logprobs:
                body["top_logprobs"] = params.top_logprobs
        if json_mode == "json_schema":
            body["response_format"] = jsonout.strict_schema_payload(params)
        elif json_mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        return await self._request("chat", body, params, json_mode)

    async def _complete(self, prompt: str, params: GenParams) -> Completion:
        body = self._common_body(params)
        body["prompt"] = prompt
        if params.logprobs:
            body["logprobs"] = params.top_logprobs
        return await self._request("completions", body, params, None)

    # -- cache, dedupe, accounting ---------------------------------------------------------------
    async def _request(
        self, endpoint: str, body: dict[str, Any], params: GenParams, json_mode: str | None
    ) -> Completion:
        fields = cache_key_fields(
            endpoint=endpoint,
            base_url=self.base_url,
            model=self.model,
            params={**params.key_dict(), "json_mode": json_mode},
            messages=body.get("messages"),
            prompt=body.get("prompt"),
        )
        key = key_of(fields)
        stage_name = current_stage()
        self._ensure_loop()
        if self.cache is not None:
            hit = self.cache.get(key)  # raises CacheMiss in mode "only"
            if hit is not None:
                self._account(hit, key, endpoint, stage_name, status="cache_hit")
                return hit
        shared = self._inflight.get(key)
        if shared is not None:
            fut, waiters = shared
            waiters[0] += 1
            comp = await self._wait_shared(key, fut, waiters)
            copy = dataclasses.replace(comp, from_cache=True, attempts=0)
            self._account(copy, key, endpoint, stage_name, status="shared")
            return copy
        task = asyncio.ensure_future(self._fetch(endpoint, body, params))
        waiters = [1]
        self._inflight[key] = (task, waiters)
        task.add_done_callback(lambda t: self._fetch_done(key, t))
        t0 = time.perf_counter()
        try:
            comp = await self._wait_shared(key, task, waiters)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            attempts = getattr(e, "attempts", 1)
            self._meter.record(
                self.model,
                failed=True,
                retries=max(attempts - 1, 0),
                latency_s=time.perf_counter() - t0,
                stage_name=stage_name,
            )
            if self.audit is not None:
                self.audit.write(
                    stage=stage_name,
                    model=self.model,
                    endpoint=endpoint,
                    key=key,
                    attempts=attempts,
                    status=f"error:{type(e).__name__}",
                    latency_s=round(time.perf_counter() - t0, 4),
                )
            raise
        if self.cache is not None:
            self.cache.put(key, fields, comp)
        self._account(comp, key, endpoint, stage_name, status="ok")
        return comp

    def _fetch_done(self, key: str, task: asyncio.Future[Completion]) -> None:
        entry = self._inflight.get(key)
        if entry is not None and entry[0] is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an orphaned failure is not logged as unhandled

    async def _wait_shared(
        self, key: str, fut: asyncio.Future[Completion], waiters: list[int]
    ) -> Completion:
        """Await a shared fetch; the last waiter to be cancelled cancels the fetch itself."""
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            waiters[0] -= 1
            if waiters[0] <= 0 and not fut.done():
                fut.cancel()
            raise

    def _account(
        self, comp: Completion, key: str, endpoint: str, stage_name: str, status: str
    ) -> None:
        self._meter.record(
            self.model,
            prompt_tokens=comp.prompt_tokens,
            completion_tokens=comp.completion_tokens,
            cached_tokens=comp.cached_tokens,
            retries=max(comp.attempts - 1, 0),
            from_cache=comp.from_cache,
            latency_s=comp.latency_s,
            stage_name=stage_name,
        )
        if self.audit is not None:
            self.audit.write(
                stage=stage_name,
                model=self.model,
                endpoint=endpoint,
                key=key,
                attempts=comp.attempts,
                status=status,
                prompt_tokens=comp.prompt_tokens,
                completion_tokens=comp.completion_tokens,
                cached_tokens=comp.cached_tokens,
                latency_s=round(comp.latency_s, 4),
            )

    # -- the retry loop ------------------------------------------------------------------------
    async def _fetch(self, endpoint: str, body: dict[str, Any], params: GenParams) -> Completion:
        policy = self.retry
        est_tokens = len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4
        est_tokens += params.max_tokens
        t0 = time.perf_counter()
        last: _Retryable | None = None
        for attempt in range(policy.max_attempts):
            if self._rpm is not None:
                await self._rpm.acquire(1)
            if self._tpm is not None:
                await self._tpm.acquire(est_tokens)
            try:
                async with self._sem:
                    data = await self._send(endpoint, body, params)
                comp = self._parse(endpoint, data, params)
                comp.attempts = attempt + 1
                comp.latency_s = time.perf_counter() - t0
                return comp
            except _Retryable as e:
                last = e
            except LLMHTTPError as e:
                e.attempts = attempt + 1
                raise
            if attempt + 1 >= policy.max_attempts:
                break
            wait = retry_after_seconds(last.headers)
            if wait is not None and wait > policy.max_retry_after:
                raise RateLimited(wait, policy.max_retry_after, attempts=attempt + 1)
            if wait is None:
                wait = policy.backoff(attempt)
            log.info(
                "%s %s attempt %d failed (%s); retrying in %.2f s",
                self.model,
                endpoint,
                attempt + 1,
                last,
                wait,
            )
            await asyncio.sleep(wait)
        assert last is not None
        if last.timeout:
            raise LLMTimeoutError(policy.max_attempts, self.timeout)
        raise RetriesExhausted(policy.max_attempts, str(last))

    async def _send(self, endpoint: str, body: dict[str, Any], params: GenParams) -> dict[str, Any]:
        extra = dict(params.extra_body) if params.extra_body else None
        api = self._sdk.chat.completions if endpoint == "chat" else self._sdk.completions
        try:
            raw = await api.with_raw_response.create(**body, extra_body=extra)
        except openai.APITimeoutError as e:
            raise _Retryable(f"timeout: {e}", timeout=True) from None
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            raise _Retryable(f"connection error: {type(cause).__name__}: {cause}") from None
        except openai.APIStatusError as e:
            headers = dict(e.response.headers.items())
            message = _error_message(e)
            if should_retry_status(e.status_code, headers):
                raise _Retryable(f"HTTP {e.status_code}: {message}", headers=headers) from None
            raise LLMHTTPError(e.status_code, message) from None
        text = raw.http_response.text
        try:
            data = json.loads(text)
        except ValueError:
            shown = text[:120]
            raise _Retryable(f"malformed response body (not JSON): {shown!r}") from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("choices"), list)
            or not data["choices"]
        ):
            raise _Retryable(f"malformed response body (no choices): {text[:120]!r}")
        return data

    # -- normalisation -------------------------------------------------------------------------
    def _parse(self, endpoint: str, data: dict[str, Any], params: GenParams) -> Completion:
        choice = data["choices"][0]
        try:
            if endpoint == "chat":
                message = choice.get("message")
                if not isinstance(message, dict):
                    raise _Retryable(
                        f"malformed response body (choice without a message): {choice!r:.120}"
                    )
                text = message.get("content")
                if text is None:
                    text = message.get("refusal") or ""
                logprobs = _chat_logprobs(choice.get("logprobs"))
            else:
                text = choice["text"]
                logprobs = _completion_logprobs(choice.get("logprobs"))
            if not isinstance(text, str):
                raise TypeError(f"the answer text is {type(text).__name__}, not a string")
            usage = data.get("usage") or {}
            details = usage.get("prompt_tokens_details") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
            cached_tokens = int(details.get("cached_tokens") or 0)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise _Retryable(f"malformed response body ({type(e).__name__}: {e})") from None
        if params.logprobs and logprobs is None:
            raise LogprobsUnavailable(self.model, endpoint)
        return Completion(
            text=text,
            finish_reason=choice.get("finish_reason"),
            logprobs=logprobs if params.logprobs else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
            raw=data,
            model=str(data.get("model") or self.model),
        )

    async def models(self) -> list[str]:
        """Model ids the server lists at ``/models`` (no retries)."""
        self._ensure_loop()
        page = await self._sdk.models.list()
        return [m.id for m in page.data]


def _error_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(e.message)


def _chat_logprobs(lp: Any) -> list[TokenLogprob] | None:
    if not lp or lp.get("content") is None:
        return None
    out = []
    for item in lp["content"]:
        top = {t["token"]: float(t["logprob"]) for t in (item.get("top_logprobs") or [])}
        out.append(TokenLogprob(item["token"], float(item["logprob"]), top))
    return out


def _completion_logprobs(lp: Any) -> list[TokenLogprob] | None:
    if not lp or lp.get("tokens") is None or lp.get("token_logprobs") is None:
        return None
    tops = lp.get("top_logprobs") or [None] * len(lp["tokens"])
    out = []
    for tok, val, top in zip(lp["tokens"], lp["token_logprobs"], tops, strict=False):
        top_d = {k: float(v) for k, v in sorted((top or {}).items(), key=lambda kv: -kv[1])}
        out.append(TokenLogprob(tok, float("nan") if val is None else float(val), top_d))
    return out
