"""MLP-neuron baseline with the sparse-coder interface, and a random-weights control."""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import nn

from sae_core.arch import SAEConfig, SparseCoder
from sae_core.codes import SparseCodes
from sae_core.errors import ConfigError, ShapeError


def random_orthogonal(d: int, seed: int) -> torch.Tensor:
    """Haar-random orthogonal matrix: QR of a Gaussian with the signs of R's diagonal folded into Q."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


class NeuronCoder(nn.Module):
    """Top-k MLP neurons (``neurons.L``: the down-projection input) as a sparse coder.

    z = x R (R orthogonal when ``rotate``, else I); keep the k largest z by signed value
    (``select="value"``, delphi) or by |z| (``"abs"``); x̂ = z_k Rᵀ. Values may be negative
    (``keep_negative``: a unit "fires" when its kept value is non-zero).
    """

    keep_negative = True

    def __init__(
        self,
        d_mlp: int,
        k: int = 32,
        rotate: bool = False,
        seed: int = 42,
        select: Literal["value", "abs"] = "value",
        site: str | None = None,
        down_proj: torch.Tensor | None = None,
    ):
        super().__init__()
        if not 0 < k <= d_mlp:
            raise ConfigError(f"k must be in 1..{d_mlp}, got {k}")
        if select not in ("value", "abs"):
            raise ConfigError(f"select must be 'value' or 'abs', got {select!r}")
        self.cfg = SAEConfig(
            d_in=d_mlp,
            n_latents=d_mlp,
            activation="topk",
            k=k,
            input_bias="none",
            site=site,
            meta={"kind": "neurons", "rotate": rotate, "seed": seed, "select": select},
        )
        self.k, self.rotate, self.select = k, rotate, select
        self.register_buffer("R", random_orthogonal(d_mlp, seed) if rotate else torch.eye(d_mlp))
        self.register_buffer("W_down", down_proj if down_proj is not None else torch.zeros(0))

    @classmethod
    def from_model(
        cls,
        model: Any,
        layer: int,
        k: int = 32,
        rotate: bool = False,
        seed: int = 42,
        select: Literal["value", "abs"] = "value",
    ) -> NeuronCoder:
        from lm_kit.hookpoints import resolve

        try:
            site = resolve(model, f"neurons.{layer}", probe=True)[0]
        except ValueError as e:  # lm-kit SiteError: unknown or out-of-range layer
            raise ConfigError(f"no MLP neurons at layer {layer!r}: {e}") from None
        w = getattr(site.module, "weight", None)
        down = None
        if w is not None:
            down = w.detach().float()
            if down.shape[1] != site.width:  # GPT-2 Conv1D stores [d_mlp, d_model]
                down = down.T
        return cls(int(site.width), k, rotate, seed, select, site=site.name, down_proj=down)

    @property
    def n_latents(self) -> int:
        return self.cfg.n_latents

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    def _z(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.d_in:
            raise ShapeError(
                f"input width {x.shape[-1]} != d_mlp={self.d_in} (site {self.cfg.site})"
            )
        return x.float() @ self.R if self.rotate else x.float()

    def encode_topk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            raise ShapeError(f"the input must be a torch.Tensor [..., d_mlp={self.d_in}]")
        z = self._z(x.reshape(-1, x.shape[-1]))
        score = z if self.select == "value" else z.abs()
        idx = torch.topk(score, self.k, dim=-1, sorted=False).indices
        return idx, z.gather(-1, idx)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        idx, val = self.encode_topk(x)
        f = torch.zeros(idx.shape[0], self.n_latents, dtype=val.dtype, device=val.device)
        return f.scatter_(-1, idx, val).reshape(*x.shape[:-1], self.n_latents)

    @torch.no_grad()
    def encode_sparse(self, x: torch.Tensor, chunk_rows: int | None = None) -> SparseCodes:
        idx, val = self.encode_topk(x)
        return SparseCodes.from_topk(idx, val, self.n_latents, keep_negative=True)

    def decode(self, f: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        if f.shape[-1] != self.n_latents:
            raise ShapeError(
                f"the latents have {f.shape[-1]} units but the coder has {self.n_latents}; "
                "decode with the coder that encoded them"
            )
        return f @ self.R.T if self.rotate else f

    def residual_directions(self) -> torch.Tensor:
        """[n_units, d_model]: unit j writes W_down R[:, j] into the residual stream."""
        if self.W_down.numel() == 0:
            raise ConfigError(
                "build the coder with NeuronCoder.from_model to get residual directions"
            )
        return (self.W_down @ self.R).T


@torch.no_grad()
def randomized(sae: SparseCoder, seed: int = 0) -> SparseCoder:
    """Random-weights control with the same shapes: Gaussian unit decoder rows scaled to the original
    row norms, encoder = decoderᵀ, zero encoder bias; b_dec, thresholds and k are kept."""
    if not isinstance(sae, SparseCoder):
        raise ConfigError(
            f"randomized needs a SparseCoder (an SAE or transcoder), got {type(sae).__name__}; "
            "for neurons, use NeuronCoder(rotate=True, seed=...) as the random-basis control"
        )
    out = copy.deepcopy(sae)
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(sae.W_dec.shape, generator=g)
    w = w / w.norm(dim=1, keepdim=True) * sae.W_dec.norm(dim=1, keepdim=True).cpu()
    out.W_dec.copy_(w.to(out.W_dec))
    out.W_enc.copy_(
        w.T[: sae.cfg.d_in].to(out.W_enc)
        if sae.cfg.d_out == sae.cfg.d_in
        else torch.randn(sae.W_enc.shape, generator=g).to(out.W_enc) / sae.cfg.d_in**0.5
    )
    out.b_enc.zero_()
    out.cfg.meta = {**sae.cfg.meta, "randomized_seed": seed}
    return out
