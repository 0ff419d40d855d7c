from __future__ import annotations

from typing import Any, Protocol

from autointerp.schema import Explanation, LatentExamples, ScoreResult


class Scorer(Protocol):
    name: str
    uses_explanation: bool

    async def score(self, ex: LatentExamples, expl: Explanation) -> ScoreResult: ...


SCORERS: dict[str, type] = {}


def register(name: str, uses_explanation: bool = True):
    def deco(cls):
        SCORERS[name] = cls
        cls.name = name
        cls.uses_explanation = uses_explanation
        return cls

    return deco


def get_scorer(name: str, **kw: Any) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; valid: {', '.join(sorted(SCORERS))}")
    return SCORERS[name](**kw)


def skipped(
    ex: LatentExamples, expl: Explanation, name: str, metric: str, reason: str
) -> ScoreResult:
    return ScoreResult(
        latent=ex.latent,
        scorer=name,
        explainer=expl.explainer,
        metric=metric,
        value=None,
        flags=[reason],
        failed=reason == "explanation_failed",
        error=None,
    )


def precheck(
    ex: LatentExamples, expl: Explanation, name: str, metric: str, uses_explanation: bool
) -> ScoreResult | None:
    if "dead" in ex.flags:
        return skipped(ex, expl, name, metric, "dead")
    if uses_explanation and (expl.failed or not expl.text.strip()):  # blank = no explanation
        return skipped(ex, expl, name, metric, "explanation_failed")
    if not ex.test:
        return skipped(ex, expl, name, metric, "low_support")
    return None
