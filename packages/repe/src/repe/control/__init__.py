"""Control: steering operators, schedules, conditional (CAST) gates and rules, contrast vectors."""

from .conditional import (
    AllOf,
    AnyOf,
    Condition,
    ConditionPoint,
    Not,
    Rule,
    find_best_condition_point,
    multisteer,
    parse_rule,
    prompt_similarities,
)
from .operators import OPERATORS, OperatorParams, apply_operator
from .schedule import UNITS, gaussian, layer_coefficients, triangle, unit_scale
from .steer import SteerSpec, directional_ablation, steer

__all__ = [
    "OPERATORS",
    "UNITS",
    "AllOf",
    "AnyOf",
    "Condition",
    "ConditionPoint",
    "Not",
    "OperatorParams",
    "Rule",
    "SteerSpec",
    "apply_operator",
    "directional_ablation",
    "find_best_condition_point",
    "gaussian",
    "layer_coefficients",
    "multisteer",
    "parse_rule",
    "prompt_similarities",
    "steer",
    "triangle",
    "unit_scale",
]
