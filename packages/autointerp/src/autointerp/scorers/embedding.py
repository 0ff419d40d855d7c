from __future__ import annotations

import math

import numpy as np

from autointerp.bootstrap import bootstrap_auroc
from autointerp.embed import Embedder
from autointerp.errors import check_int
from autointerp.format import plain
from autointerp.metrics import auroc, delong_se
from autointerp.rng import make_rng
from autointerp.schema import NEGATIVE_KINDS, Explanation, LatentExamples, Prediction, ScoreResult
from autointerp.scorers.base import precheck, register

STELLA_PREFIX = "Instruct: Retrieve sentences that could be related to the explanation.\nQuery:"


def check_counts(name: str, n_pos: int, n_neg: int, bootstrap_b: int) -> None:
    """The sample-size settings shared by the AUROC scorers (refused up front, never sliced)."""
    check_int(f"{name} scorer", "n_pos", n_pos, 1)
    check_int(f"{name} scorer", "n_neg", n_neg, 1)
    check_int(f"{name} scorer", "bootstrap_b", bootstrap_b, 0, "0 turns the bootstrap CI off")


def auroc_result(
    ex, expl, name, labels, scores, kinds, b, seed, extra_flags=(), metrics_extra=None
) -> ScoreResult:
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    rng = make_rng(seed, name, ex.latent, "bootstrap")
    value = auroc(y, s)
    lo, hi = bootstrap_auroc(y, s, rng, b) if b else (math.nan, math.nan)
    metrics: dict[str, float | None] = {"auroc": value, "auroc_delong_se": delong_se(y, s)}
    for kind in NEGATIVE_KINDS:
        sel = np.array([lab == 1 or k == kind for lab, k in zip(y, kinds, strict=True)])
        if any(k == kind for k in kinds):
            metrics[f"auroc_{kind}"] = auroc(y[sel], s[sel])
    metrics.update(metrics_extra or {})
    preds = [
        Prediction(item=i, label=int(lab), kind=k, prob=float(v))
        for i, (lab, v, k) in enumerate(zip(y, s, kinds, strict=True))
    ]
    flags = list(extra_flags)
    if not (y == 0).any():
        flags.append("no_negatives")
    return ScoreResult(
        latent=ex.latent,
        scorer=name,
        explainer=expl.explainer,
        metric="auroc",
        value=value,
        ci_lo=lo,
        ci_hi=hi,
        n_pos=int(y.sum()),
        n_neg=int((y == 0).sum()),
        flags=flags,
        metrics={k: None if v is None or math.isnan(v) else float(v) for k, v in metrics.items()},
        predictions=preds,
    )


@register("embedding")
class EmbeddingScorer:
    """AUROC of cos(embed(query + explanation), embed(window)) for test positives vs negatives."""

    def __init__(
        self,
        embedder: Embedder,
        query_prefix: str = "",
        n_pos: int = 100,
        n_neg: int = 100,
        bootstrap_b: int = 1000,
        seed: int = 0,
        **_: object,
    ) -> None:
        check_counts(self.name, n_pos, n_neg, bootstrap_b)
        self.embedder = embedder
        self.prefix = query_prefix
        self.n_pos, self.n_neg = n_pos, n_neg
        self.b = bootstrap_b
        self.seed = seed

    async def score(self, ex: LatentExamples, expl: Explanation) -> ScoreResult:
        pre = precheck(ex, expl, self.name, "auroc", True)
        if pre is not None:
            return pre
        wins = ex.test[: self.n_pos] + ex.negatives[: self.n_neg]
        labels = [1] * len(ex.test[: self.n_pos]) + [0] * len(ex.negatives[: self.n_neg])
        embs = self.embedder.embed([self.prefix + expl.text] + [plain(w) for w in wins])
        sims = embs[1:] @ embs[0]
        return auroc_result(
            ex, expl, self.name, labels, sims, [w.kind for w in wins], self.b, self.seed
        )
