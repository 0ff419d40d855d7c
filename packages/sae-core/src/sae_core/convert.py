"""Exact parameter foldings between formats, and site-name mapping to lm-kit canonical sites."""

from __future__ import annotations

import copy
import re

import torch

from sae_core.arch import SparseCoder
from sae_core.errors import ConfigError


def _clone(sae: SparseCoder) -> SparseCoder:
    return copy.deepcopy(sae)


@torch.no_grad()
def fold_input_bias(sae: SparseCoder) -> SparseCoder:
    """Return an equivalent coder with ``input_bias='none'``: b_enc' = b_enc − b_dec·W_enc."""
    out = _clone(sae)
    if sae.cfg.input_bias == "none":
        return out
    shift = sae.b_dec @ sae.W_enc
    if sae.cfg.activation == "gated":
        out.b_enc.sub_(shift)
        out.b_mag.sub_(shift * torch.exp(sae.r_mag))
    else:
        out.b_enc.sub_(shift)
    out.cfg.input_bias = "none"
    return out


@torch.no_grad()
def unfold_input_bias(sae: SparseCoder) -> SparseCoder:
    """Inverse of :func:`fold_input_bias`: an equivalent coder that subtracts ``b_dec`` from its input."""
    out = _clone(sae)
    if sae.cfg.input_bias == "b_dec":
        return out
    if sae.cfg.d_out != sae.cfg.d_in:
        raise ConfigError("cannot subtract b_dec from the input of a coder with d_out != d_in")
    shift = sae.b_dec @ sae.W_enc
    out.b_enc.add_(shift)
    if sae.cfg.activation == "gated":
        out.b_mag.add_(shift * torch.exp(sae.r_mag))
    out.cfg.input_bias = "b_dec"
    return out


@torch.no_grad()
def fold_norm_scaling(sae: SparseCoder, factor: float) -> SparseCoder:
    """Fold a constant input scale s (SAELens ``expected_average_only_in``) into the weights.

    The original coder sees ``s·x`` and returns ``x̂/s``; the folded one sees ``x``:
    W_enc·s, W_dec/s, b_dec/s (and W_skip unchanged).
    """
    if not factor or factor <= 0:
        raise ConfigError(f"the input scaling factor must be positive, got {factor!r}")
    out = _clone(sae)
    out.W_enc.mul_(factor)
    out.W_dec.div_(factor)
    out.b_dec.div_(factor)
    return out


@torch.no_grad()
def fold_decoder_norm(sae: SparseCoder) -> SparseCoder:
    """Give every decoder row unit norm, moving the norm into the encoder.

    With ``rescale_by_dec_norm`` this is exact for every architecture (the flag is cleared). Without
    it, it is exact for the reconstruction of ReLU and JumpReLU coders (activations are scaled by
    ‖W_dec,i‖, thresholds too); TopK is refused, since the selected set would change.
    """
    out = _clone(sae)
    norms = sae.dec_norms().clamp_min(1e-12)
    if sae.cfg.rescale_by_dec_norm:
        if sae.cfg.activation == "gated":
            raise ConfigError("decoder-norm rescaling is not defined for gated coders")
        out.W_enc.mul_(norms)
        out.b_enc.mul_(norms)
        out.W_dec.div_(norms[:, None])
        out.cfg.rescale_by_dec_norm = False
        return out
    if sae.cfg.activation not in ("relu", "jumprelu"):
        raise ConfigError(
            f"folding decoder norms into a {sae.cfg.activation} coder changes which latents are "
            "selected; only relu/jumprelu (or coders with rescale_by_dec_norm) can be folded"
        )
    out.W_enc.mul_(norms)
    out.b_enc.mul_(norms)
    out.W_dec.div_(norms[:, None])
    if out.threshold is not None:
        out.threshold.mul_(norms)
    return out


_SPARSIFY_PATTERNS = [
    (re.compile(r"^(?:model\.)?(?:layers|h)\.(\d+)$"), "resid_post.{}"),
    (re.compile(r"^(?:model\.)?layers\.(\d+)\.mlp$"), "mlp_out.{}"),
    (re.compile(r"^(?:transformer\.)?h\.(\d+)\.mlp$"), "mlp_out.{}"),
    (re.compile(r"^(?:model\.)?layers\.(\d+)\.self_attn$"), "attn_out.{}"),
    (re.compile(r"^(?:transformer\.)?h\.(\d+)\.attn$"), "attn_out.{}"),
    (re.compile(r"^(?:model\.)?embed_tokens$"), "embed"),
]


def site_from_hookpoint(hookpoint: str, transcode: bool = False) -> tuple[str, str | None]:
    """Map a sparsify hookpoint to lm-kit canonical (site_in, site_out).

    ``layers.N`` → ``resid_post.N``; ``layers.N.mlp`` → ``mlp_out.N`` (a transcoder reads ``mlp_in.N``
    and writes ``mlp_out.N``); ``embed_tokens`` → ``embed``; ``h.N.attn`` → ``attn_out.N``. Unknown
    names map to the raw lm-kit form ``module:<hookpoint>``.
    """
    for pat, fmt in _SPARSIFY_PATTERNS:
        m = pat.match(hookpoint)
        if m:
            site = fmt.format(*m.groups())
            if transcode and site.startswith("mlp_out."):
                return "mlp_in." + site.split(".", 1)[1], site
            return site, None
    return f"module:{hookpoint}", None


def hookpoint_from_site(site: str | None) -> str:
    """Inverse of :func:`site_from_hookpoint` for Llama-style module names."""
    if not site:
        return "sae"
    if site.startswith("module:"):
        return site.split(":", 2)[1]
    m = re.match(r"^(resid_post|mlp_out|mlp_in|attn_out)\.(\d+)$", site)
    if m:
        kind, layer = m.groups()
        return {
            "resid_post": f"layers.{layer}",
            "mlp_out": f"layers.{layer}.mlp",
            "mlp_in": f"layers.{layer}.mlp",
            "attn_out": f"layers.{layer}.self_attn",
        }[kind]
    if site == "embed":
        return "embed_tokens"
    return site.replace("/", "_")


def site_from_tl(hook_name: str | None) -> str | None:
    """TransformerLens hook name → lm-kit canonical site (via ``lm_kit.hookpoints.from_tl``)."""
    if not hook_name:
        return None
    try:
        from lm_kit.hookpoints import from_tl
    except ImportError:  # lm-kit not built yet: keep the TL name
        return hook_name
    try:
        return from_tl(hook_name)
    except (ValueError, KeyError):
        return hook_name


def site_to_tl(site: str | None) -> str | None:
    if not site:
        return None
    try:
        from lm_kit.hookpoints import to_tl
    except ImportError:
        return site
    try:
        return to_tl(site)
    except (ValueError, KeyError):
        return site
