"""Explainers: highlighted-token (default), contrastive, token-list baseline, best-of-k."""

from autointerp.explainers.base import EXPLAINERS, Explainer, get_explainer
from autointerp.explainers.best_of_k import BestOfKExplainer
from autointerp.explainers.contrastive import ContrastiveExplainer
from autointerp.explainers.default import DefaultExplainer
from autointerp.explainers.intervention import InterventionExplainer
from autointerp.explainers.token_list import TokenListExplainer

__all__ = [
    "InterventionExplainer",
    "EXPLAINERS",
    "BestOfKExplainer",
    "ContrastiveExplainer",
    "DefaultExplainer",
    "Explainer",
    "TokenListExplainer",
    "get_explainer",
]
