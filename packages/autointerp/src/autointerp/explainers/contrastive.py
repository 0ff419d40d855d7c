from __future__ import annotations

from lm_kit.llm import GenParams, LLMClient

from autointerp.errors import check_int
from autointerp.explainers.base import register
from autointerp.explainers.default import run_explain_prompt, top_train
from autointerp.explainers.prompts import contrastive_messages
from autointerp.schema import Explanation, LatentExamples

_ORDER = {"neg_embed": 0, "neg_neighbour": 1, "neg_random": 2}


@register("contrastive")
class ContrastiveExplainer:
    """15 activating windows + 5 negatives (hard ones first)."""

    def __init__(
        self, client: LLMClient, n_pos: int = 15, n_neg: int = 5, max_tokens: int = 200, **_: object
    ) -> None:
        check_int("contrastive explainer", "n_pos", n_pos, 1, "the prompt needs examples")
        check_int("contrastive explainer", "n_neg", n_neg, 0)
        check_int("contrastive explainer", "max_tokens", max_tokens, 1)
        self.client = client
        self.n_pos, self.n_neg = n_pos, n_neg
        self.params = GenParams(temperature=0.0, max_tokens=max_tokens)

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
        # negatives shown to the explainer come from the reference set, so test negatives stay unseen
        negs = sorted(ex.ref_negatives, key=lambda w: _ORDER.get(w.kind, 3))[: self.n_neg]
        msgs = contrastive_messages(top_train(ex, self.n_pos), negs, ex.a_max)
        return await run_explain_prompt(self.client, msgs, ex.latent, self.name, self.params)
