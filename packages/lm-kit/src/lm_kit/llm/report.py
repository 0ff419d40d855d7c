"""Helpers behind the ``lm-kit llm-ping`` and ``lm-kit usage`` commands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lm_kit.llm.audit import read_audit
from lm_kit.llm.meter import PriceTable, UsageMeter
from lm_kit.llm.types import Completion, GenParams


def summarise_audit(path: str | Path, prices: PriceTable | None = None) -> UsageMeter:
    """Rebuild usage per (stage, model) from audit JSONL files (one file or a directory)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"{p} does not exist; give the folder holding the audit *.jsonl files"
        )
    meter = UsageMeter(prices)
    n = 0
    for rec in read_audit(p):
        n += 1
        status = str(rec.get("status", ""))
        meter.record(
            str(rec.get("model", "?")),
            prompt_tokens=int(rec.get("prompt_tokens") or 0),
            completion_tokens=int(rec.get("completion_tokens") or 0),
            cached_tokens=int(rec.get("cached_tokens") or 0),
            retries=max(int(rec.get("attempts") or 1) - 1, 0),
            failed=status.startswith("error"),
            from_cache=status in ("cache_hit", "shared"),
            latency_s=float(rec.get("latency_s") or 0.0),
            stage_name=str(rec.get("stage") or "default"),
        )
    if n == 0:
        raise ValueError(
            f"no audit records found in {p}; create clients with audit_path=... to write them"
        )
    return meter


async def _ping(
    url: str, model: str, api_key_env: str, timeout: float
) -> tuple[Completion, list[str]]:
    from lm_kit.llm.openai_compat import OpenAICompatClient
    from lm_kit.llm.retry import RetryPolicy

    client = OpenAICompatClient(
        url,
        model,
        api_key_env=api_key_env,
        timeout=timeout,
        retry=RetryPolicy(max_attempts=2, base=0.2, cap=1.0, max_retry_after=10),
    )
    try:
        try:
            models = await client.models()
        except Exception:  # noqa: BLE001 - listing models is optional on many servers
            models = []
        out = await client.chat("Reply with the single word: pong", GenParams(max_tokens=8))
        return out, models
    finally:
        await client.aclose()


def ping(
    url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 30.0
) -> dict[str, Any]:
    """One short chat request; returns what the server said and how long it took."""
    out, models = asyncio.run(_ping(url, model, api_key_env, timeout))
    return {
        "text": out.text,
        "finish_reason": out.finish_reason,
        "latency_s": round(out.latency_s, 3),
        "attempts": out.attempts,
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "models": models,
    }
