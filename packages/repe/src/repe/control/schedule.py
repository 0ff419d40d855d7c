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


def _finite(name: str, x: object, *, positive: bool = False) -> float:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RepeError(f"{name} must be a number, got {x!r}") from None
    if not math.isfinite(f) or (positive and f <= 0):
        raise RepeError(f"{name} must be a finite number{' > 0' if positive else ''}, got {x!r}")
    return f


def triangle(center: float, width: float) -> Triangle:
    return Triangle(_finite("triangle center", center), _finite("triangle width", width))


def gaussian(center: float, sigma: float) -> Gaussian:
    return Gaussian(
        _finite("gaussian center", center), _finite("gaussian sigma", sigma, positive=True)
    )


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
    c = _finite("the steering coefficient (coeff)", coeff)
    out = {}
    for layer in layers:
        g, u = schedule_weight(schedule, layer), unit_scale(vector, layer, units)
        if not (math.isfinite(g) and math.isfinite(u)):
            raise RepeError(
                f"layer {layer}: non-finite coefficient (schedule weight {g}, {units!r} unit "
                f"scale {u}); check the schedule values and the vector's calibration"
            )
        out[layer] = c * g * u
    return out
