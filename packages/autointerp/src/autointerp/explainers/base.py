from __future__ import annotations

from typing import Any, Protocol

from autointerp.schema import Explanation, LatentExamples


class Explainer(Protocol):
    name: str

    async def explain(self, ex: LatentExamples) -> Explanation: ...


EXPLAINERS: dict[str, type] = {}


def register(name: str):
    def deco(cls):
        EXPLAINERS[name] = cls
        cls.name = name
        return cls

    return deco


def get_explainer(name: str, **kw: Any) -> Explainer:
    if name not in EXPLAINERS:
        raise ValueError(f"unknown explainer {name!r}; valid: {', '.join(sorted(EXPLAINERS))}")
    return EXPLAINERS[name](**kw)
