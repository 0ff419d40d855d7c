"""Evaluation: sweeps (behaviour vs KL cost), MC1/MC2, A/B probability, token-set log-odds,
k-shot LAT tasks."""

from .ab import ABItem, ab_prob
from .behaviour import first_token_ids, next_token_probs, token_set_logodds
from .cost import CostReport, kl_cost
from .lat import PRIMER_SHOTS, lat_mc_eval, lat_prompt
from .mc import MCResult, load_mc_jsonl, mc_score
from .sweep import pareto_front, plot_sweep, sweep

__all__ = [
    "ABItem",
    "CostReport",
    "MCResult",
    "PRIMER_SHOTS",
    "ab_prob",
    "first_token_ids",
    "kl_cost",
    "lat_mc_eval",
    "lat_prompt",
    "load_mc_jsonl",
    "mc_score",
    "next_token_probs",
    "pareto_front",
    "plot_sweep",
    "sweep",
    "token_set_logodds",
]
