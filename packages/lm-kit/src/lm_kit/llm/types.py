"""Plain data types shared by every LLM backend: messages, generation parameters, results."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Message:
    """One chat message. ``Message.user("hi")`` or ``Message("user", "hi")``."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"unknown message role {self.role!r}; use one of {', '.join(_ROLES)}")
        if not isinstance(self.content, str):
            raise TypeError(
                f"Message.content must be a str, got {type(self.content).__name__}; "
                "join multi-part content into one string first"
            )

    @classmethod
    def system(cls, content: str) -> Message:
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> Message:
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str) -> Message:
        return cls("assistant", content)

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


MessageLike = Message | Mapping[str, Any]


def as_messages(messages: Sequence[MessageLike] | str) -> list[Message]:
    """Coerce ``[Message | {"role":..., "content":...}]`` (or one user string) to ``[Message]``."""
    if isinstance(messages, str):
        return [Message.user(messages)]
    if isinstance(messages, (Message, Mapping)) or not isinstance(messages, Iterable):
        raise TypeError(
            "messages must be a str or a list of Message / {'role': ..., 'content': ...} dicts, "
            f"got {type(messages).__name__}"
            + (
                "; wrap the single message in a list"
                if isinstance(messages, (Message, Mapping))
                else ""
            )
        )
    out: list[Message] = []
    for i, m in enumerate(messages):
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, Mapping):
            if "role" not in m or "content" not in m:
                raise ValueError(f"message {i} needs 'role' and 'content' keys, got {sorted(m)}")
            out.append(Message(m["role"], m["content"]))
        else:
            raise TypeError(f"message {i} must be a Message or a dict, got {type(m).__name__}")
    if not out:
        raise ValueError("messages is empty; pass at least one message")
    return out


def _schema_of(response_format: Any) -> dict[str, Any] | None:
    """JSON schema of a pydantic model class or a schema dict (``None`` passes through)."""
    if response_format is None:
        return None
    if isinstance(response_format, Mapping):
        return dict(response_format)
    schema_fn = getattr(response_format, "model_json_schema", None)
    if callable(schema_fn):
        return schema_fn()
    raise TypeError(
        "response_format must be a pydantic BaseModel subclass or a JSON-schema dict, got "
        f"{type(response_format).__name__}"
    )


def _check_real(name: str, x: Any) -> None:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(x).__name__} {x!r}")
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")


def _check_int(name: str, x: Any) -> None:
    try:
        ok = not isinstance(x, bool) and operator.index(x) == x
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"{name} must be an int, got {type(x).__name__} {x!r}")


@dataclass(frozen=True)
class GenParams:
    """Generation parameters. Defaults: greedy (temperature 0), 512 new tokens.

    ``sample_index`` only distinguishes repeated samples of the same request in the cache
    (best-of-n); ``response_format`` is a pydantic model class or a JSON schema dict;
    ``extra_body`` is passed through to the server (e.g. vLLM's ``prompt_logprobs``).
    """

    temperature: float = 0.0
    max_tokens: int = 512
    top_p: float = 1.0
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    response_format: Any = None
    sample_index: int = 0
    extra_body: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif self.stop is not None:
            object.__setattr__(self, "stop", tuple(self.stop))
        _check_real("temperature", self.temperature)
        _check_real("top_p", self.top_p)
        for name in ("max_tokens", "top_logprobs", "sample_index"):
            _check_int(name, getattr(self, name))
        if self.seed is not None:
            _check_int("seed", self.seed)
        if self.stop is not None:
            for s in self.stop:
                if not isinstance(s, str) or not s:
                    raise ValueError(
                        f"stop strings must be non-empty str, got {s!r} in stop={self.stop!r}"
                    )
        if self.extra_body is not None and not isinstance(self.extra_body, Mapping):
            raise TypeError(
                f"extra_body must be a dict of extra request fields, got {type(self.extra_body).__name__}"
            )
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.top_logprobs <= 20:
            raise ValueError(
                f"top_logprobs must be in 0..20 (the OpenAI limit), got {self.top_logprobs}"
            )
        if self.top_logprobs and not self.logprobs:
            object.__setattr__(self, "logprobs", True)
        if self.sample_index < 0:
            raise ValueError(f"sample_index must be >= 0, got {self.sample_index}")
        _schema_of(self.response_format)  # validates the type early

    def replace(self, **changes: Any) -> GenParams:
        return dataclasses.replace(self, **changes)

    @property
    def json_schema(self) -> dict[str, Any] | None:
        return _schema_of(self.response_format)

    def key_dict(self) -> dict[str, Any]:
        """All resolved parameters as plain JSON (used for cache keys and batching groups)."""
        return {
            "temperature": float(self.temperature),
            "max_tokens": int(self.max_tokens),
            "top_p": float(self.top_p),
            "stop": list(self.stop) if self.stop else None,
            "seed": self.seed,
            "logprobs": bool(self.logprobs),
            "top_logprobs": int(self.top_logprobs),
            "response_format": self.json_schema,
            "sample_index": int(self.sample_index),
            "extra_body": dict(self.extra_body) if self.extra_body else None,
        }

    def group_key(self) -> str:
        """Requests with equal group keys may be generated in one batch (sample_index excluded)."""
        d = self.key_dict()
        d.pop("sample_index")
        return json.dumps(d, sort_keys=True, default=str)


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its logprob, and the top alternatives ``{token: logprob}`` (best first)."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)
    token_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "logprob": self.logprob,
            "top": self.top,
            "token_id": self.token_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TokenLogprob:
        return cls(d["token"], float(d["logprob"]), dict(d.get("top") or {}), d.get("token_id"))


@dataclass
class Completion:
    """One model answer, normalised across backends.

    ``from_cache`` is True when served from the disk cache (then ``attempts`` is 0);
    ``parsed`` holds the validated object when ``GenParams.response_format`` was given.
    """

    text: str
    finish_reason: str | None
    logprobs: list[TokenLogprob] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    from_cache: bool = False
    attempts: int = 1
    latency_s: float = 0.0
    raw: Any = None
    model: str = ""
    parsed: Any = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of everything except ``raw`` and ``parsed``."""
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "logprobs": [t.to_dict() for t in self.logprobs] if self.logprobs is not None else None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "from_cache": self.from_cache,
            "attempts": self.attempts,
            "latency_s": self.latency_s,
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, raw: Any = None) -> Completion:
        lps = d.get("logprobs")
        return cls(
            text=d["text"],
            finish_reason=d.get("finish_reason"),
            logprobs=[TokenLogprob.from_dict(t) for t in lps] if lps is not None else None,
            prompt_tokens=int(d.get("prompt_tokens", 0)),
            completion_tokens=int(d.get("completion_tokens", 0)),
            cached_tokens=int(d.get("cached_tokens", 0)),
            from_cache=bool(d.get("from_cache", False)),
            attempts=int(d.get("attempts", 1)),
            latency_s=float(d.get("latency_s", 0.0)),
            raw=raw,
            model=d.get("model", ""),
        )


@dataclass
class Usage:
    """Counters for one (stage, model) pair, or a sum of them.

    ``cost_usd`` is None when the model has no price in the price table (never a silent 0).
    ``saved_prompt_tokens``/``saved_completion_tokens`` count tokens served from the cache.
    """

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    saved_prompt_tokens: int = 0
    saved_completion_tokens: int = 0
    wall_s: float = 0.0
    cost_usd: float | None = 0.0

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost_usd is None or other.cost_usd is None
            else self.cost_usd + other.cost_usd
        )
        vals = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in dataclasses.fields(self)
            if f.name != "cost_usd"
        }
        return Usage(**vals, cost_usd=cost)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Request:
    """One request for ``LLMClient.map``: either chat ``messages`` or a completion ``prompt``."""

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    params: GenParams = field(default_factory=GenParams)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError(
                "a Request needs exactly one of messages= (chat) or prompt= (completion)"
            )
        if self.messages is not None:
            object.__setattr__(self, "messages", tuple(as_messages(self.messages)))
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise TypeError(
                f"Request.prompt must be a str, got {type(self.prompt).__name__}; use "
                "messages= for chat"
            )
        if not isinstance(self.params, GenParams):
            raise TypeError(
                f"Request.params must be a GenParams, got {type(self.params).__name__}; e.g. "
                "GenParams(max_tokens=64)"
            )

    @classmethod
    def chat(
        cls, messages: Sequence[MessageLike] | str, params: GenParams | None = None
    ) -> Request:
        return cls(messages=tuple(as_messages(messages)), params=params or GenParams())

    @classmethod
    def complete(cls, prompt: str, params: GenParams | None = None) -> Request:
        return cls(prompt=prompt, params=params or GenParams())
