"""One async LLM client interface with two backends (OpenAI-compatible HTTP, local transformers).

Backends are imported lazily (``OpenAICompatClient``, ``TransformersClient``), so importing
``lm_kit.llm`` does not import torch.
"""

from __future__ import annotations

from typing import Any

from lm_kit.llm.client import BaseLLMClient, LLMClient, as_request, make_client
from lm_kit.llm.errors import (
    CacheMiss,
    JSONOutputError,
    LLMError,
    LLMHTTPError,
    LLMTimeoutError,
    LogprobsUnavailable,
    MissingAPIKey,
    RateLimited,
    RetriesExhausted,
)
from lm_kit.llm.meter import PriceTable, UsageMeter, current_stage, stage
from lm_kit.llm.types import (
    Completion,
    GenParams,
    Message,
    Request,
    TokenLogprob,
    Usage,
    as_messages,
)

_LAZY = {
    "OpenAICompatClient": "lm_kit.llm.openai_compat",
    "TransformersClient": "lm_kit.llm.local",
    "RetryPolicy": "lm_kit.llm.retry",
    "ResponseCache": "lm_kit.llm.cache",
    "cache_key": "lm_kit.llm.cache",
    "AuditLog": "lm_kit.llm.audit",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lm_kit.llm' has no attribute {name!r}")


__all__ = [
    "AuditLog",
    "BaseLLMClient",
    "CacheMiss",
    "Completion",
    "GenParams",
    "JSONOutputError",
    "LLMClient",
    "LLMError",
    "LLMHTTPError",
    "LLMTimeoutError",
    "LogprobsUnavailable",
    "Message",
    "MissingAPIKey",
    "PriceTable",
    "RateLimited",
    "Request",
    "ResponseCache",
    "RetriesExhausted",
    "RetryPolicy",
    "TokenLogprob",
    "Usage",
    "UsageMeter",
    "as_messages",
    "as_request",
    "cache_key",
    "current_stage",
    "make_client",
    "stage",
]
