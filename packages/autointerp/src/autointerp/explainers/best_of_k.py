from __future__ import annotations

import asyncio
import math

from lm_kit.llm import LLMClient

from autointerp.embed import Embedder
from autointerp.errors import check_choice, check_int
from autointerp.explainers.base import register
from autointerp.explainers.default import DefaultExplainer
from autointerp.schema import Explanation, LatentExamples


@register("best_of_k")
class BestOfKExplainer:
    """k samples at T=0.7, each scored on held-out *validation* train windows plus reference
    negatives (never the test set), by embedding AUROC or a small detection run; the best wins."""

    def __init__(
        self,
        client: LLMClient,
        k: int = 5,
        temperature: float = 0.7,
        embedder: Embedder | None = None,
        select_by: str = "embedding",
        n_train: int = 40,
        max_tokens: int = 200,
        **_: object,
    ) -> None:
        check_int("best_of_k explainer", "k", k, 1, "best-of-k needs at least one sample")
        check_choice("best_of_k explainer", "select_by", select_by, ("embedding", "detection"))
        self.client = client
        self.k = k
        self.embedder = embedder
        self.select_by = select_by
        self.samplers = [
            DefaultExplainer(
                client,
                n_train=n_train,
                max_tokens=max_tokens,
                temperature=temperature,
                sample_index=i,
            )
            for i in range(k)
        ]

    def _validation(self, ex: LatentExamples) -> LatentExamples:
        return ex.model_copy(update={"test": ex.val, "negatives": ex.ref_negatives})

    async def _score(self, ex: LatentExamples, e: Explanation) -> float:
        from autointerp.scorers import get_scorer

        if self.select_by == "embedding":
            if self.embedder is None:
                raise ValueError(
                    "best_of_k with select_by='embedding' needs an embedder (e.g. MiniLMEmbedder())"
                )
            scorer = get_scorer("embedding", embedder=self.embedder, bootstrap_b=0)
        else:
            scorer = get_scorer(
                "detection",
                client=self.client,
                sequential=False,
                bootstrap_b=0,
                stage_name="explain",
            )
        r = await scorer.score(self._validation(ex), e)
        return -math.inf if r.value is None else r.value

    async def explain(self, ex: LatentExamples) -> Explanation:
        cands = await asyncio.gather(*(s.explain(ex) for s in self.samplers))
        ok = [c for c in cands if not c.failed and c.text]
        pt = sum(c.prompt_tokens for c in cands)
        ct = sum(c.completion_tokens for c in cands)
        if not ok:
            return Explanation(
                latent=ex.latent,
                explainer=self.name,
                text="",
                failed=True,
                error="all k samples failed",
                prompt_tokens=pt,
                completion_tokens=ct,
            )
        if not ex.val:
            best = ok[0]
            flags = ["no_validation_windows"]
        else:
            scores = [await self._score(ex, c) for c in ok]
            best = ok[max(range(len(ok)), key=lambda i: (scores[i], -i))]
            flags = []
        return Explanation(
            latent=ex.latent,
            explainer=self.name,
            text=best.text,
            flags=flags + best.flags,
            prompt_hash=best.prompt_hash,
            prompt_tokens=pt,
            completion_tokens=ct,
            candidates=[c.text for c in cands],
        )
