"""Evaluation: sweeps (behaviour vs KL cost), MC1/MC2, A/B probability, token-set log-odds."""

from .ab import ABItem, ab_prob
from .behaviour import first_token_ids, next_token_probs, token_set_logodds
from .cost import CostReport, kl_cost
from .mc import MCResult, load_mc_jsonl, mc_score
from .sweep import pareto_front, plot_sweep, sweep

__all__ = [
    "ABItem",
    "CostReport",
    "MCResult",
    "ab_prob",
    "first_token_ids",
    "kl_cost",
    "load_mc_jsonl",
    "mc_score",
    "next_token_probs",
    "pareto_front",
    "plot_sweep",
    "sweep",
    "token_set_logodds",
]
