from __future__ import annotations

from collections import defaultdict

from autointerp.errors import check_int
from autointerp.explainers.base import register
from autointerp.schema import Explanation, LatentExamples


def top_tokens(ex: LatentExamples, n: int = 5) -> list[str]:
    total: dict[str, float] = defaultdict(float)
    for w in ex.train:
        for t, a in zip(w.tokens, w.acts, strict=True):
            if a > 0:
                total[t.strip()] += a
    return [t for t, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:n] if t]


@register("token_list")
class TokenListExplainer:
    """Model-free baseline: the top 5 tokens by summed activation over the train windows."""

    def __init__(self, n: int = 5, **_: object) -> None:
        self.n = check_int("token_list explainer", "n", n, 1)

    async def explain(self, ex: LatentExamples) -> Explanation:
        toks = top_tokens(ex, self.n)
        if not toks:
            return Explanation(
                latent=ex.latent,
                explainer=self.name,
                text="",
                failed=True,
                error="no firing tokens in train windows",
                flags=["dead"],
            )
        text = "the tokens " + ", ".join(f'"{t}"' for t in toks)
        return Explanation(latent=ex.latent, explainer=self.name, text=text)
