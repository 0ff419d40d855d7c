from __future__ import annotations

from lm_kit.llm import GenParams, LLMClient

from autointerp.errors import check_int
from autointerp.explainers.base import register
from autointerp.explainers.prompts import explain_messages
from autointerp.llm import safe_chat
from autointerp.parse import parse_explanation
from autointerp.rng import text_hash
from autointerp.schema import Explanation, LatentExamples, Window


def top_train(ex: LatentExamples, n: int) -> list[Window]:
    return sorted(ex.train, key=lambda w: -w.max_act)[:n]


async def run_explain_prompt(
    client: LLMClient,
    messages,
    latent: int,
    name: str,
    params: GenParams,
    stage_name: str = "explain",
) -> Explanation:
    """Call, parse the last ``[EXPLANATION]:`` line; an empty answer is retried once at T=0.7."""
    prompt_hash = text_hash("\n".join(f"{m.role}:{m.content}" for m in messages))
    pt = ct = 0
    flags: list[str] = []
    for attempt in range(2):
        p = (
            params
            if attempt == 0
            else params.replace(temperature=0.7, sample_index=params.sample_index + 1)
        )
        out = await safe_chat(client, messages, p, stage_name)
        if not out.ok:
            return Explanation(
                latent=latent,
                explainer=name,
                text="",
                failed=True,
                error=out.error,
                prompt_hash=prompt_hash,
                prompt_tokens=pt,
                completion_tokens=ct,
            )
        c = out.completion
        pt += c.prompt_tokens
        ct += c.completion_tokens
        text, fl = parse_explanation(c.text)
        if text:
            return Explanation(
                latent=latent,
                explainer=name,
                text=text,
                flags=flags + fl,
                prompt_hash=prompt_hash,
                prompt_tokens=pt,
                completion_tokens=ct,
            )
        flags += fl + ["retried_empty"]
    return Explanation(
        latent=latent,
        explainer=name,
        text="",
        failed=True,
        error="empty explanation after retry",
        flags=flags,
        prompt_hash=prompt_hash,
        prompt_tokens=pt,
        completion_tokens=ct,
    )


@register("default")
class DefaultExplainer:
    """Highlighted tokens (>= 0.3 a_max) in ``<<…>>`` runs + top-11 activation lists, 3 few-shots."""

    def __init__(
        self,
        client: LLMClient,
        n_train: int = 40,
        max_tokens: int = 200,
        cot: bool = False,
        temperature: float = 0.0,
        sample_index: int = 0,
        **_: object,
    ) -> None:
        check_int("default explainer", "n_train", n_train, 1, "the prompt needs examples")
        check_int("default explainer", "max_tokens", max_tokens, 1)
        self.client = client
        self.n_train = n_train
        self.cot = cot
        self.params = GenParams(
            temperature=temperature,
            max_tokens=max_tokens + (300 if cot else 0),
            sample_index=sample_index,
        )

    async def explain(self, ex: LatentExamples) -> Explanation:
        if not ex.train:
            return Explanation(
                latent=ex.latent,
                explainer=self.name,
                text="",
                failed=True,
                error="no train windows (dead latent)",
                flags=["dead"],
            )
        msgs = explain_messages(top_train(ex, self.n_train), ex.a_max, self.cot)
        return await run_explain_prompt(self.client, msgs, ex.latent, self.name, self.params)
