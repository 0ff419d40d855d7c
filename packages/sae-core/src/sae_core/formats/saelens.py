"""SAELens layout: ``cfg.json`` + ``sae_weights.safetensors`` (+ optional ``sparsity.safetensors``).

Tensors ``W_enc`` [d, n], ``W_dec`` [n, d_out], ``b_enc``, ``b_dec``, ``threshold`` (JumpReLU; or
``log_threshold``), gated ``b_gate``/``r_mag``/``b_mag``, transcoders ``W_skip``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sae_core.arch import SAEConfig, SparseCoder
from sae_core.convert import fold_norm_scaling, site_from_tl, site_to_tl
from sae_core.errors import ConfigError, ShapeError
from sae_core.formats.common import (
    dict_field,
    float_field,
    int_field,
    load_safetensors,
    matrix_shape,
    read_json,
    require,
    save_safetensors_atomic,
    write_json_atomic,
)

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
SPARSITY = "sparsity.safetensors"

_ARCH = {
    "standard": "relu",
    "relu": "relu",
    "topk": "topk",
    "batchtopk": "batchtopk",
    "jumprelu": "jumprelu",
    "gated": "gated",
    "transcoder": "relu",
    "skip_transcoder": "relu",
    "jumprelu_transcoder": "jumprelu",
    "jumprelu_skip_transcoder": "jumprelu",
}
_ARCH_OUT = {
    "relu": "standard",
    "topk": "topk",
    "batchtopk": "batchtopk",
    "jumprelu": "jumprelu",
    "gated": "gated",
}


def is_saelens(folder: Path) -> bool:
    return (folder / CFG).is_file() and (folder / WEIGHTS).is_file()


def load_saelens(folder: Path, device: str = "cpu") -> SparseCoder:
    folder = Path(folder)
    cfg = read_json(folder / CFG)
    require(cfg, ["d_in", "d_sae"], folder / CFG, hint="SAELens configs record d_in and d_sae")
    arch_name = cfg.get("architecture", "standard")
    if arch_name not in _ARCH:
        raise ConfigError(
            f"{folder / CFG}: unknown SAELens architecture {arch_name!r}; known: {sorted(_ARCH)}"
        )
    activation = _ARCH[arch_name]
    t = load_safetensors(folder / WEIGHTS)
    d_in, n = int_field(cfg, "d_in", folder / CFG), int_field(cfg, "d_sae", folder / CFG)
    cfg_d_out = int_field(cfg, "d_out", folder / CFG)
    transcoder = "transcoder" in arch_name or ("d_out" in cfg and cfg["d_out"] != cfg["d_in"])
    if cfg_d_out:
        d_out = cfg_d_out
    elif "W_dec" in t:
        d_out = matrix_shape(t["W_dec"], "W_dec", folder / WEIGHTS, "[d_sae, d_out]")[1]
    else:
        d_out = d_in
    norm = cfg.get("normalize_activations") or "none"
    scale = None
    if norm == "expected_average_only_in":
        scale = float_field(cfg, "norm_scaling_factor", folder / CFG) or float_field(
            cfg, "scaling_factor", folder / CFG
        )
        if scale is None:
            raise ConfigError(
                f"{folder / CFG}: normalize_activations='expected_average_only_in' needs the dataset "
                "scaling factor; add 'norm_scaling_factor' to cfg.json (it is folded into the weights)"
            )
        norm = "none"
    if norm not in ("none", "constant_norm_rescale", "layer_norm"):
        raise ConfigError(f"{folder / CFG}: unsupported normalize_activations {norm!r}")
    if activation in ("topk", "batchtopk") and cfg.get("k") is None:
        raise ConfigError(f"{folder / CFG}: architecture {arch_name!r} needs field 'k'")
    meta = dict_field(cfg, "metadata", folder / CFG)
    hook = meta.get("hook_name") or cfg.get("hook_name")
    hook_out = meta.get("hook_name_out") or cfg.get("hook_name_out")
    if activation == "batchtopk" and "threshold" in t and t["threshold"].ndim == 1:
        activation = (
            "jumprelu"  # SAELens stores inference BatchTopK as per-latent JumpReLU thresholds
        )
    sae_cfg = SAEConfig(
        d_in=d_in,
        n_latents=n,
        activation=activation,
        k=int_field(cfg, "k", folder / CFG) if activation in ("topk", "batchtopk") else None,
        d_out=d_out,
        input_bias="b_dec" if cfg.get("apply_b_dec_to_input", True) and not transcoder else "none",
        norm_in=norm,
        rescale_by_dec_norm=bool(cfg.get("rescale_acts_by_decoder_norm", False)),
        skip="W_skip" in t,
        transcoder=transcoder,
        site=site_from_tl(hook),
        site_out=site_from_tl(hook_out),
        model_id=meta.get("model_name") or cfg.get("model_name"),
        meta={
            "format": "saelens",
            "architecture": arch_name,
            "hook_name": hook,
            "reshape_activations": cfg.get("reshape_activations", "none"),
            "prepend_bos": meta.get("prepend_bos", cfg.get("prepend_bos")),
        },
    )
    sae = SparseCoder(sae_cfg, device=device)
    tensors = {k: t[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec") if k in t}
    if activation == "gated":
        if "b_gate" not in t:
            raise ShapeError(f"{folder / WEIGHTS}: gated SAE without 'b_gate'")
        tensors["b_enc"] = t["b_gate"]
        tensors["r_mag"], tensors["b_mag"] = t.get("r_mag"), t.get("b_mag")
    if sae.threshold is not None:
        if "threshold" in t:
            tensors["threshold"] = t["threshold"]
        elif "log_threshold" in t:
            tensors["threshold"] = torch.exp(t["log_threshold"])
        else:
            raise ShapeError(
                f"{folder / WEIGHTS}: {activation} SAE without 'threshold' (or 'log_threshold')"
            )
    if "W_skip" in t:
        tensors["W_skip"] = t["W_skip"]
    tensors = {k: v for k, v in tensors.items() if v is not None}
    _clamp_threshold(tensors, folder)
    sae.load_canonical(tensors, source=str(folder / WEIGHTS))
    return fold_norm_scaling(sae, float(scale)) if scale is not None else sae


def _clamp_threshold(tensors: dict[str, torch.Tensor], folder: Path) -> None:
    th = tensors.get("threshold")
    if th is not None and (th < 0).any():
        import warnings

        warnings.warn(
            f"{folder}: {int((th < 0).sum())} negative JumpReLU thresholds clamped to 0",
            stacklevel=3,
        )
        tensors["threshold"] = th.clamp_min(0)


def save_saelens(
    sae: SparseCoder, folder: Path, sparsity_log10: torch.Tensor | None = None
) -> Path:
    cfg = sae.cfg
    folder = Path(folder)
    arch = _ARCH_OUT[cfg.activation] if cfg.activation != "groupmax" else None
    if arch is None:
        raise ConfigError("SAELens has no groupmax architecture; use the sparsify layout")
    if cfg.transcoder:
        arch = {"relu": "transcoder", "jumprelu": "jumprelu_transcoder"}.get(cfg.activation)
        if arch is None:
            raise ConfigError(
                f"SAELens has no {cfg.activation} transcoder; use the sparsify layout"
            )
        if cfg.skip:
            arch = arch.replace("transcoder", "skip_transcoder")
    out = {
        "architecture": arch,
        "d_in": cfg.d_in,
        "d_sae": cfg.n_latents,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": cfg.input_bias == "b_dec",
        "normalize_activations": cfg.norm_in,
        "reshape_activations": cfg.meta.get("reshape_activations", "none"),
        "metadata": {
            "hook_name": site_to_tl(cfg.site),
            "model_name": cfg.model_id,
            "hook_name_out": site_to_tl(cfg.site_out),
        },
    }
    if cfg.d_out != cfg.d_in or cfg.transcoder:
        out["d_out"] = cfg.d_out
    if cfg.k is not None:
        out["k"] = cfg.k
    if cfg.rescale_by_dec_norm:
        out["rescale_acts_by_decoder_norm"] = True
    t = {"W_enc": sae.W_enc, "b_enc": sae.b_enc, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
    if cfg.activation == "gated":
        t["b_gate"] = t.pop("b_enc")
        t["r_mag"], t["b_mag"] = sae.r_mag, sae.b_mag
    if sae.threshold is not None:
        t["threshold"] = sae.threshold
    if sae.W_skip is not None:
        t["W_skip"] = sae.W_skip
    save_safetensors_atomic({k: v.to(torch.float32) for k, v in t.items()}, folder / WEIGHTS)
    if sparsity_log10 is not None:
        save_safetensors_atomic({"sparsity": sparsity_log10.float()}, folder / SPARSITY)
    write_json_atomic(folder / CFG, out)
    return folder
