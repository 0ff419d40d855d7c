"""Thin helpers over lm-kit's LLM client (the only LLM layer): calls that never crash a run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from lm_kit.llm import Completion, GenParams, LLMClient, Message, stage


@dataclass
class CallOutcome:
    completion: Completion | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.completion is not None


async def safe_chat(
    client: LLMClient, messages: list[Message], params: GenParams, stage_name: str
) -> CallOutcome:
    """One chat call; any client error (429 at the retry limit, timeout, 5xx, bad body) is
    returned as a recorded failure instead of propagating."""
    try:
        with stage(stage_name):
            return CallOutcome(await client.chat(messages, params))
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - every failure is recorded per latent
        return CallOutcome(None, f"{type(e).__name__}: {e}"[:500])


def tokens_of(c: Completion | None) -> tuple[int, int]:
    if c is None or c.from_cache:
        return (0, 0) if c is None else (c.prompt_tokens, c.completion_tokens)
    return c.prompt_tokens, c.completion_tokens
