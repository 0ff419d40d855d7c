"""Intervention explainer: explain a latent by what steering its decoder direction promotes.

Per explainer prompt (train windows, truncated after their first firing token; disjoint from the
scorer's test-window prompts) the direction is steered in at the KL-matched strength and the top
5 next tokens by ``p_steered - p_clean`` are shown as ``<<token>> +Δp``. The LLM names the
concept that steering amplifies.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lm_kit.llm import GenParams, LLMClient, Message

from autointerp.explainers.base import register
from autointerp.explainers.default import run_explain_prompt
from autointerp.schema import Explanation, LatentExamples
from autointerp.steering import InterventionConfig, Steerer, model_lock, steer_prompts

SYSTEM = (
    "You are studying one feature inside a language model. The feature was amplified while the "
    "model read short text prompts. For each prompt you see the next tokens whose probability "
    "rose the most, written as <<token>> +increase.\n"
    "Work out what the promoted tokens have in common (a word class, a topic, a style) and "
    "describe the amplified concept in one short phrase (under 15 words).\n"
    "End your reply with exactly one line of the form:\n[EXPLANATION]: <short phrase>"
)
FEW_SHOT = (
    "Prompt 1: I went to the market and bought\n"
    "Promoted: <<apples>> +0.31, <<bananas>> +0.12, <<fruit>> +0.09, <<pears>> +0.05, <<some>> +0.01\n"
    "Prompt 2: Her favourite snack is\n"
    "Promoted: <<grapes>> +0.27, <<mango>> +0.20, <<an>> +0.06, <<cherries>> +0.04, <<fresh>> +0.02",
    "[EXPLANATION]: names of fruits",
)


def promoted_tokens(
    steerer: Steerer, prompts: list[list[int]], latent: int, a_max: float, cfg: InterventionConfig
) -> tuple[list[list[tuple[str, float]]], dict[str, Any]]:
    """Per prompt, the ``cfg.top_tokens`` tokens with the largest ``p_steered - p_clean`` at the
    last prompt token, steered at the KL-matched strength."""
    with model_lock(steerer.model):
        ses = steerer.session(prompts)
        v = steerer.direction(latent)
        r = ses.search(v, a_max, cfg)
        lp = ses.last_logprobs(v, r.s)
        dp = lp.exp() - ses.clean_logp.exp()
    vals, idx = dp.topk(cfg.top_tokens, dim=-1)
    out = []
    for row_v, row_i in zip(vals.tolist(), idx.tolist(), strict=True):
        out.append([(steerer.tok.decode([t]), float(x)) for t, x in zip(row_i, row_v, strict=True)])
    return out, {"s": r.s, "kl": r.kl, "flags": r.flags}


def intervention_messages(
    prompts_text: list[str], promoted: list[list[tuple[str, float]]]
) -> list[Message]:
    lines = []
    for i, (p, toks) in enumerate(zip(prompts_text, promoted, strict=True), start=1):
        lines.append(f"Prompt {i}: {' '.join(p.split())}")
        lines.append("Promoted: " + ", ".join(f"<<{t.strip()}>> +{d:.2f}" for t, d in toks))
    return [
        Message.system(SYSTEM),
        Message.user(FEW_SHOT[0]),
        Message.assistant(FEW_SHOT[1]),
        Message.user("\n".join(lines)),
    ]


@register("intervention")
class InterventionExplainer:
    def __init__(
        self,
        client: LLMClient,
        steerer: Steerer | None = None,
        intervention: InterventionConfig | None = None,
        max_tokens: int = 200,
        **_: object,
    ) -> None:
        if steerer is None:
            raise ValueError(
                "the intervention explainer needs the subject model with the coder's decoder "
                "(steerer=Steerer(model, tok, site, W_dec)); in the interp CLI pass "
                "--subject MODEL --sae PATH"
            )
        self.client, self.steerer = client, steerer
        self.cfg = intervention or InterventionConfig()
        self.params = GenParams(temperature=0.0, max_tokens=max_tokens)

    async def explain(self, ex: LatentExamples) -> Explanation:
        prompts = steer_prompts(ex, "explain", self.cfg)
        if not prompts:
            return Explanation(
                latent=ex.latent,
                explainer=self.name,
                text="",
                failed=True,
                error="no train window fires after position 0 (no steering prompts)",
                flags=["low_support"],
            )
        try:
            promoted, info = await asyncio.to_thread(
                promoted_tokens, self.steerer, prompts, ex.latent, ex.a_max, self.cfg
            )
        except Exception as e:  # noqa: BLE001 - recorded per latent
            return Explanation(
                latent=ex.latent,
                explainer=self.name,
                text="",
                failed=True,
                error=f"{type(e).__name__}: {e}"[:500],
            )
        texts = [self.steerer.tok.decode(p) for p in prompts]
        e = await run_explain_prompt(
            self.client,
            intervention_messages(texts, promoted),
            ex.latent,
            self.name,
            self.params,
            stage_name="explain:intervention",
        )
        e.flags = sorted(set(e.flags + info["flags"]))
        return e
