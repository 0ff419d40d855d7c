"""Per-layer coefficients: ``alpha_l = c * g_l * u_l``.

``g_l`` is a schedule (dict, ``uniform``, ``triangle(center, width)``, ``gaussian(center,
sigma)``); ``u_l`` a unit: ``unit`` = 1 (RepE/repeng coefficients transfer), ``diff`` = the
norm of the mean difference (CAA), ``resid`` = median residual norm, ``sigma`` = SD of the
training scores, ``raw`` = the stored write vector's norm (repeng, steering-vectors). The
sign of the direction is already folded into the write vector.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import RepeError, unknown
from ..vector import ReadingVector

UNITS = ("unit", "diff", "resid", "sigma", "raw")


@dataclass(frozen=True)
class Triangle:
    center: float
    width: float

    def __call__(self, layer: int) -> float:
        return max(0.0, 1.0 - abs(layer - self.center) / max(self.width, 1e-9))


@dataclass(frozen=True)
class Gaussian:
    center: float
    sigma: float

    def __call__(self, layer: int) -> float:
        return math.exp(-0.5 * ((layer - self.center) / self.sigma) ** 2)


def triangle(center: float, width: float) -> Triangle:
    return Triangle(center, width)


def gaussian(center: float, sigma: float) -> Gaussian:
    return Gaussian(center, sigma)


ScheduleLike = str | Mapping[int, float] | Triangle | Gaussian | None


def schedule_weight(schedule: ScheduleLike, layer: int) -> float:
    if schedule is None or schedule == "uniform":
        return 1.0
    if isinstance(schedule, Mapping):
        return float(schedule.get(layer, 0.0))
    if callable(schedule):
        return float(schedule(layer))
    raise unknown("schedule", schedule, ["uniform", "dict", "triangle", "gaussian"])


def unit_scale(vector: ReadingVector, layer: int, units: str) -> float:
    if units not in UNITS:
        raise unknown("unit", units, UNITS)
    if units == "unit":
        return 1.0
    w = vector.write[layer][0].astype(np.float64)
    if units == "raw":
        return float(np.linalg.norm(w))
    cal = vector.calibration.get(layer, {})
    key = {"diff": "diff_norm", "resid": "resid_norm_median", "sigma": "score_sd"}[units]
    if key in cal and cal[key] is not None:
        return float(cal[key])
    if units == "diff":  # for mean-diff style vectors the write vector is the mean diff
        return float(np.linalg.norm(w))
    raise RepeError(
        f"units={units!r} needs calibration[{layer}][{key!r}], which this vector lacks; refit with "
        "repe.fit_reading_vector or use units='unit'/'raw'"
    )


def layer_coefficients(
    vector: ReadingVector,
    coeff: float,
    layers: list[int],
    schedule: ScheduleLike = None,
    units: str = "unit",
) -> dict[int, float]:
    return {
        layer: float(coeff) * schedule_weight(schedule, layer) * unit_scale(vector, layer, units)
        for layer in layers
    }
