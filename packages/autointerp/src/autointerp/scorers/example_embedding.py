from __future__ import annotations

import numpy as np

from autointerp.embed import Embedder
from autointerp.format import plain
from autointerp.schema import Explanation, LatentExamples, ScoreResult
from autointerp.scorers.base import precheck, register
from autointerp.scorers.embedding import auroc_result, check_counts


@register("example_embedding", uses_explanation=False)
class ExampleEmbeddingScorer:
    """Explanation-free: ``d(x) = mean cos(x, train+) - mean cos(x, ref-)``; AUROC of d and mean Δ."""

    def __init__(
        self,
        embedder: Embedder,
        n_pos: int = 100,
        n_neg: int = 100,
        bootstrap_b: int = 1000,
        seed: int = 0,
        **_: object,
    ) -> None:
        check_counts(self.name, n_pos, n_neg, bootstrap_b)
        self.embedder = embedder
        self.n_pos, self.n_neg = n_pos, n_neg
        self.b = bootstrap_b
        self.seed = seed

    async def score(self, ex: LatentExamples, expl: Explanation) -> ScoreResult:
        pre = precheck(ex, expl, self.name, "auroc", False)
        if pre is not None:
            return pre
        if not ex.train or not ex.ref_negatives:
            return ScoreResult(
                latent=ex.latent,
                scorer=self.name,
                explainer=expl.explainer,
                metric="auroc",
                value=None,
                flags=["low_support"],
            )
        wins = ex.test[: self.n_pos] + ex.negatives[: self.n_neg]
        labels = np.array([1] * len(ex.test[: self.n_pos]) + [0] * len(ex.negatives[: self.n_neg]))
        e = self.embedder.embed([plain(w) for w in ex.train + ex.ref_negatives + wins])
        ntr, nref = len(ex.train), len(ex.ref_negatives)
        tr, ref, x = e[:ntr], e[ntr : ntr + nref], e[ntr + nref :]
        d = (x @ tr.T).mean(1) - (x @ ref.T).mean(1)
        delta = (
            float(d[labels == 1].mean() - d[labels == 0].mean())
            if (labels == 0).any()
            else float("nan")
        )
        return auroc_result(
            ex,
            expl,
            self.name,
            labels,
            d,
            [w.kind for w in wins],
            self.b,
            self.seed,
            metrics_extra={"mean_delta": delta},
        )
