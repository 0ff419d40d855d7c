"""Control: steering operators, schedules, conditional (CAST) gates and contrast vectors."""

from .operators import OPERATORS, OperatorParams, apply_operator
from .schedule import UNITS, gaussian, layer_coefficients, triangle, unit_scale
from .steer import Condition, SteerSpec, directional_ablation, steer

__all__ = [
    "OPERATORS",
    "UNITS",
    "Condition",
    "OperatorParams",
    "SteerSpec",
    "apply_operator",
    "directional_ablation",
    "gaussian",
    "layer_coefficients",
    "steer",
    "triangle",
    "unit_scale",
]
