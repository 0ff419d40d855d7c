"""The DPK network: one frequency block and one small tanh MLP per distribution parameter.

Head j reads [cos(omega_jk tau), sin(omega_jk tau) for k < K_j, standardised covariates] and
outputs d raw values. omega = omega0 + Delta / tau_span, with Delta trained (phases kept in
float64); pinned slots ignore Delta.  An explicit trend beta0 + beta1 s (+ beta2 s^2, + hinge
terms for 'piecewise'), s = tau / tau_span, is added to the location head, with linear Fourier
terms sum_k a_k cos(k w tau) + b_k sin(k w tau) of any `linear_periods` (Prophet-style).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

TRENDS = ("none", "constant", "linear", "quadratic", "piecewise")
N_CHANGEPOINTS = 10


def changepoint_grid(n: int, changepoint_range: float) -> np.ndarray:
    """n equally spaced changepoints in (0, changepoint_range] of the scaled time s in [0, 1]."""
    return np.linspace(0.0, float(changepoint_range), int(n) + 1)[1:]


class FrequencyBlock(nn.Module):
    """omega_k = omega0_k + Delta_k / span (Delta ignored on pinned slots)."""

    def __init__(self, omega0: Sequence[float], pinned: Sequence[bool], span: float):
        super().__init__()
        self.register_buffer("omega0", torch.tensor(list(omega0), dtype=torch.float64))
        self.register_buffer("pinned", torch.tensor(list(pinned), dtype=torch.bool))
        self.register_buffer("span", torch.tensor(float(span), dtype=torch.float64))
        self.delta = nn.Parameter(torch.zeros(len(omega0), dtype=torch.float64))

    @property
    def size(self) -> int:
        return int(self.omega0.numel())

    def omegas(self) -> torch.Tensor:
        return (
            self.omega0
            + torch.where(self.pinned, torch.zeros_like(self.delta), self.delta) / self.span
        )

    def features(
        self, tau: torch.Tensor, override: tuple[int, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(N, 2K) float32 features; `override=(k, phase)` replaces slot k's phase."""
        if self.size == 0:
            return torch.zeros(tau.shape[0], 0, dtype=torch.float32, device=tau.device)
        phase = torch.remainder(tau[:, None] * self.omegas()[None, :], 2 * np.pi)
        if override is not None:
            k, ph = override
            ph = ph.to(phase.dtype).expand(tau.shape[0]) if ph.dim() <= 1 else ph
            phase = phase.clone()
            phase[:, k] = ph.reshape(-1)
        phase = phase.float()
        return torch.cat([torch.cos(phase), torch.sin(phase)], dim=1)


def linear_fourier(tau: torch.Tensor, omegas: torch.Tensor, order: int) -> torch.Tensor:
    """(N, 2 * order * len(omegas)) float32: cos(k w tau), sin(k w tau) for k = 1..order,
    phases reduced in float64."""
    k = torch.arange(1, order + 1, dtype=torch.float64, device=tau.device)
    w = (omegas.to(tau.device)[:, None] * k[None, :]).reshape(-1)
    phase = torch.remainder(tau.double()[:, None] * w[None, :], 2 * np.pi).float()
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=1)


def make_head(n_in: int, hidden: Sequence[int], n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class DPKNet(nn.Module):
    def __init__(
        self,
        omega0: Sequence[Sequence[float]],
        pinned: Sequence[Sequence[bool]],
        span: float,
        n_cov: int,
        hidden: Sequence[int],
        out_dim: int,
        trend: str,
        init_bias: np.ndarray,
        n_changepoints: int = N_CHANGEPOINTS,
        changepoint_range: float = 0.8,
        changepoint_penalty: float = 1e-3,
        linear_omegas: Sequence[float] = (),
        linear_order: int = 2,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            FrequencyBlock(w, p, span) for w, p in zip(omega0, pinned, strict=True)
        )
        self.heads = nn.ModuleList(
            make_head(2 * b.size + n_cov, hidden, out_dim) for b in self.blocks
        )
        with torch.no_grad():
            for head, bias in zip(self.heads, init_bias, strict=True):
                head[-1].bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        self.trend = trend
        degree = {"none": -1, "constant": 0, "linear": 1, "quadratic": 2, "piecewise": 1}[trend]
        self.trend_beta = nn.Parameter(torch.zeros(degree + 1, out_dim))
        self.changepoint_penalty = float(changepoint_penalty)
        if trend == "piecewise":
            cps = changepoint_grid(n_changepoints, changepoint_range)
            self.register_buffer("changepoints", torch.tensor(cps, dtype=torch.float32))
            self.trend_hinge = nn.Parameter(torch.zeros(len(cps), out_dim))
        self.register_buffer("span", torch.tensor(float(span), dtype=torch.float64))
        # linear Fourier terms of the `linear_periods` (no weight decay: named trend_*)
        self.register_buffer("linear_omega", torch.tensor(list(linear_omegas), dtype=torch.float64))
        self.linear_order = int(linear_order)
        n_lin = 2 * self.linear_order * len(linear_omegas)
        self.trend_fourier = nn.Parameter(torch.zeros(n_lin, out_dim))
        # intercept correction added to the location head after training (0 while training)
        self.register_buffer("level_offset", torch.zeros(out_dim))

    @property
    def n_heads(self) -> int:
        return len(self.heads)

    def head_raw(
        self,
        j: int,
        tau: torch.Tensor,
        cov: torch.Tensor,
        override: tuple[int, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        x = torch.cat([self.blocks[j].features(tau, override), cov], dim=1)
        return self.heads[j](x)

    def trend_term(self, tau: torch.Tensor) -> torch.Tensor:
        s = (tau / self.span).float()[:, None]
        out = torch.zeros(s.shape[0], self.trend_beta.shape[1], device=s.device)
        for p in range(self.trend_beta.shape[0]):
            out = out + self.trend_beta[p] * s**p
        if self.trend == "piecewise":
            out = out + torch.relu(s - self.changepoints[None, :]) @ self.trend_hinge
        if self.trend_fourier.shape[0]:
            out = (
                out + linear_fourier(tau, self.linear_omega, self.linear_order) @ self.trend_fourier
            )
        return out

    def forward(self, tau: torch.Tensor, cov: torch.Tensor) -> list[torch.Tensor]:
        raw = [self.head_raw(j, tau, cov) for j in range(self.n_heads)]
        raw[0] = raw[0] + self.trend_term(tau) + self.level_offset
        return raw

    def penalty(self) -> torch.Tensor:
        if self.trend == "piecewise":
            return self.changepoint_penalty * self.trend_hinge.abs().sum()
        return torch.zeros((), device=self.trend_beta.device)


def count_parameters(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))
