"""Edit operators on a hidden state ``h`` (B, T, D); every one returns a new tensor.

``m`` is a (B, T) 0/1 write mask, ``v`` a unit direction, ``alpha`` a float or (B,) tensor.

* ``add``:        h + m a v
* ``piecewise``:  h + m a v sign(h.v)                 (RepE)
* ``ablate``:     h - m (h.v) v                      (projection; ignores a)
* ``clamp``:      h - m (h.v - a) v                  (sets h.v to a)
* ``ablate_add``: h - m ((h.v) v - a v)              (steering-vectors; = clamp)
* ``subspace_ablate``: h - m V (V^T h)               (V orthonormal, D x k)
* ``leace``:      h - m b f^T (h - mu)               (rank-1 LEACE eraser)

* custom:         any callable ``op(h, v, a, m) -> h'`` given as ``SteerSpec(operator=op)``;
                  ``m`` is (B, T, 1), and tokens outside the mask are restored afterwards.

``normalize`` rescales each edited token to its pre-edit norm; ``norm_cap`` only when it grew.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..errors import RepeError, unknown

OPERATORS = ("add", "piecewise", "ablate", "clamp", "ablate_add", "subspace_ablate", "leace")


@dataclass
class OperatorParams:
    v: torch.Tensor  # (D,) unit, or (D, k) orthonormal for subspace_ablate
    b: torch.Tensor | None = None  # leace
    f: torch.Tensor | None = None
    mu: torch.Tensor | None = None
    _cast: dict[tuple[torch.device, torch.dtype], torch.Tensor] = field(
        default_factory=dict, repr=False
    )

    def v_like(self, h: torch.Tensor) -> torch.Tensor:
        """``v`` on h's device and dtype, cast once per (device, dtype)."""
        key = (h.device, h.dtype)
        out = self._cast.get(key)
        if out is None:
            out = self._cast[key] = self.v.to(device=h.device, dtype=h.dtype)
        return out


def _alpha(alpha: float | torch.Tensor, h: torch.Tensor) -> torch.Tensor | float:
    if isinstance(alpha, torch.Tensor):
        a = alpha.to(device=h.device, dtype=h.dtype)
        return a.view(-1, *([1] * (h.dim() - 1))) if a.dim() == 1 else a
    return float(alpha)


def apply_operator(
    name: str | Callable[..., torch.Tensor],
    h: torch.Tensor,
    p: OperatorParams,
    alpha: float | torch.Tensor,
    mask: torch.Tensor | None,
    *,
    normalize: bool = False,
    norm_cap: bool = False,
) -> torch.Tensor:
    if not callable(name) and name not in OPERATORS:
        raise unknown("operator", name, OPERATORS)
    m = (
        torch.ones(h.shape[:-1], dtype=h.dtype, device=h.device)
        if mask is None
        else mask.to(device=h.device, dtype=h.dtype)
    )[..., None]
    a = _alpha(alpha, h)
    v = p.v_like(h)
    if callable(name):
        out = name(h, v, a, m)
        if not isinstance(out, torch.Tensor) or out.shape != h.shape:
            raise RepeError(
                f"custom operator {getattr(name, '__name__', name)!r} must return a tensor of "
                f"shape {tuple(h.shape)}, got {getattr(out, 'shape', type(out).__name__)}"
            )
        out = torch.where(m > 0, out, h)
    elif name == "add":
        out = torch.addcmul(h, m, v, value=a) if isinstance(a, float) else h + m * a * v
    elif name == "piecewise":
        proj = h @ v
        out = h + m * a * torch.sign(proj)[..., None] * v
    elif name == "ablate":
        out = h - m * (h @ v)[..., None] * v
    elif name in ("clamp", "ablate_add"):
        out = h - m * ((h @ v)[..., None] - a) * v
    elif name == "subspace_ablate":
        vv = v if v.dim() == 2 else v[:, None]
        out = h - m * ((h @ vv) @ vv.T)
    else:  # leace
        assert p.b is not None and p.f is not None and p.mu is not None
        b, f, mu = (t.to(device=h.device, dtype=h.dtype) for t in (p.b, p.f, p.mu))
        out = h - m * ((h - mu) @ f)[..., None] * b
    if normalize or norm_cap:
        n0 = h.norm(dim=-1, keepdim=True)
        n1 = out.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(h.dtype).tiny)
        ratio = n0 / n1
        if norm_cap:
            ratio = torch.clamp(ratio, max=1.0)
        out = torch.where(m > 0, out * ratio, out)
    return out
