from __future__ import annotations

import asyncio
from typing import Protocol

from autointerp.format import plain
from autointerp.schema import Explanation, LatentExamples, ScoreResult
from autointerp.scorers.base import precheck, register
from autointerp.scorers.embedding import auroc_result, check_counts

FEW_SHOTS = [
    ("names of birds", "A heron stood still in the shallow water."),
    ("past-tense verbs of motion", "She walked home and then ran to the station."),
    ("numbers written as digits", "The box held 12 pens and 3 rulers."),
    ("words about cooking", "Stir the sauce and let it simmer for ten minutes."),
]
BASELINE = "Various unrelated sentences."


def surprisal_prefix(z: str) -> str:
    shots = "".join(f"Description: {d}\nSentences:\n{s}\n\n" for d, s in FEW_SHOTS)
    return shots + f"Description: {z}\nSentences:\n"


class LogprobModel(Protocol):
    name: str

    async def logprob(self, prefix: str, texts: list[str]) -> list[float]:
        """Sum of log p(text tokens | prefix) for each text."""
        ...


class TransformersLogprob:
    """Exact log p(x | prefix) from a local causal LM; the prefix KV cache is computed once and reused."""

    name = "transformers"

    def __init__(self, model, tok) -> None:
        self.model, self.tok = model, tok

    def _sync(self, prefix: str, texts: list[str]) -> list[float]:
        import copy

        import torch

        dev = next(self.model.parameters()).device
        p_ids = self.tok(prefix, return_tensors="pt", add_special_tokens=True)["input_ids"].to(dev)
        out = []
        with torch.inference_mode():
            pre = self.model(p_ids, use_cache=True)
            last_logits = pre.logits[:, -1]
            for t in texts:
                ids = self.tok(t, return_tensors="pt", add_special_tokens=False)["input_ids"].to(
                    dev
                )
                if ids.shape[1] == 0:
                    out.append(0.0)
                    continue
                cache = copy.deepcopy(pre.past_key_values)
                o = self.model(ids, past_key_values=cache, use_cache=True)
                logits = torch.cat([last_logits[:, None], o.logits[:, :-1]], dim=1).float()
                lp = torch.log_softmax(logits, -1).gather(-1, ids[..., None]).sum()
                out.append(float(lp))
        return out

    async def logprob(self, prefix: str, texts: list[str]) -> list[float]:
        return await asyncio.to_thread(self._sync, prefix, texts)


@register("surprisal")
class SurprisalScorer:
    """AUROC of ``log p(x|z) - log p(x|"Various unrelated sentences.")`` under a base LM."""

    def __init__(
        self,
        lm: LogprobModel,
        n_pos: int = 100,
        n_neg: int = 100,
        bootstrap_b: int = 1000,
        seed: int = 0,
        instruct_model: bool = False,
        **_: object,
    ) -> None:
        check_counts(self.name, n_pos, n_neg, bootstrap_b)
        self.lm = lm
        self.n_pos, self.n_neg = n_pos, n_neg
        self.b = bootstrap_b
        self.seed = seed
        self.flags = ["instruct_model"] if instruct_model else []

    async def score(self, ex: LatentExamples, expl: Explanation) -> ScoreResult:
        pre = precheck(ex, expl, self.name, "auroc", True)
        if pre is not None:
            return pre
        wins = ex.test[: self.n_pos] + ex.negatives[: self.n_neg]
        labels = [1] * len(ex.test[: self.n_pos]) + [0] * len(ex.negatives[: self.n_neg])
        texts = [plain(w) for w in wins]
        try:
            with_z = await self.lm.logprob(surprisal_prefix(expl.text), texts)
            base = await self.lm.logprob(surprisal_prefix(BASELINE), texts)
        except Exception as e:  # noqa: BLE001 - recorded per latent
            return ScoreResult(
                latent=ex.latent,
                scorer=self.name,
                explainer=expl.explainer,
                metric="auroc",
                value=None,
                failed=True,
                error=f"{type(e).__name__}: {e}"[:500],
                flags=["failed"],
            )
        v = [a - b for a, b in zip(with_z, base, strict=True)]
        return auroc_result(
            ex, expl, self.name, labels, v, [w.kind for w in wins], self.b, self.seed, self.flags
        )
