"""Reconstruction metrics: FVU (sparsify's uncentred-error definition), L0, dead fraction, CE recovered."""

from __future__ import annotations

from typing import Any

import torch

from sae_core.arch import fvu
from sae_core.errors import ConfigError, ShapeError


def l0(f: torch.Tensor) -> float:
    """Mean number of non-zero latents per input."""
    return float((f != 0).sum(-1).float().mean())


def dead_fraction(tokens_since_fired: torch.Tensor, dead_tokens: int) -> float:
    """Fraction of latents that did not fire in the last ``dead_tokens`` tokens."""
    return float((tokens_since_fired > dead_tokens).float().mean())


@torch.no_grad()
def evaluate(
    sae: Any, x: torch.Tensor, y: torch.Tensor | None = None, batch: int = 4096
) -> dict[str, float]:
    """FVU, L0 and the fraction of latents that never fire on ``x`` (held-out activations)."""
    y = x if y is None else y
    if batch <= 0:
        raise ConfigError(f"batch must be positive, got {batch}")
    if x.dim() != 2 or x.shape[0] == 0:
        raise ShapeError(
            f"evaluate needs held-out activations [N > 0, d], got shape {tuple(x.shape)}"
        )
    if y.shape[0] != x.shape[0]:
        raise ShapeError(f"y has {y.shape[0]} rows but x has {x.shape[0]}")
    fired = torch.zeros(sae.n_latents, dtype=torch.bool)
    err = tot = 0.0
    l0_sum = 0
    mean = y.float().mean(0)
    for s in range(0, x.shape[0], batch):
        xb, yb = x[s : s + batch].float(), y[s : s + batch].float()
        f = sae.encode(xb)
        rec = sae.decode(f, xb)
        err += float((yb - rec).pow(2).sum())
        tot += float((yb - mean).pow(2).sum())
        fired |= (f > 0).any(0)
        l0_sum += int((f > 0).sum())
    if tot == 0:
        raise ShapeError(
            "the evaluation targets have zero variance (all rows equal), so FVU is undefined; "
            "evaluate on real held-out activations"
        )
    return {
        "fvu": err / tot,
        "l0": l0_sum / x.shape[0],
        "dead_fraction": float((~fired).float().mean()),
        "n_tokens": int(x.shape[0]),
    }


@torch.no_grad()
def ce_recovered(
    model: Any,
    sae: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    site: str | None = None,
) -> dict[str, float]:
    """Loss recovered = (CE_zero − CE_sae)/(CE_zero − CE_clean), splicing via lm-kit edit hooks."""
    from lm_kit.hooks import Fn, edit, run

    site = site or sae.cfg.site
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)

    def ce() -> float:
        logits = run(model, input_ids=input_ids, attention_mask=attention_mask).logits
        lp = torch.log_softmax(logits[:, :-1].float(), -1)
        tgt = input_ids[:, 1:]
        m = attention_mask[:, 1:].bool()
        return float(-lp.gather(-1, tgt[..., None])[..., 0][m].mean())

    clean = ce()
    with edit(
        model, {site: Fn(lambda h: sae.decode(sae.encode(h.float()), h.float()).to(h.dtype))}
    ):
        spliced = ce()
    with edit(model, {site: Fn(lambda h: torch.zeros_like(h))}):
        zero = ce()
    return {
        "ce_clean": clean,
        "ce_sae": spliced,
        "ce_zero_ablation": zero,
        "ce_recovered": (zero - spliced) / (zero - clean) if zero != clean else float("nan"),
    }


__all__ = ["fvu", "l0", "dead_fraction", "evaluate", "ce_recovered"]
