"""EleutherAI sparsify layout: ``<root>/<hookpoint>/cfg.json`` + ``sae.safetensors``.

Tensors: ``encoder.weight`` [n, d], ``encoder.bias`` [n], ``W_dec`` [n, d_out], ``b_dec`` [d_out],
optional ``W_skip`` [d_out, d_in]. An SAE subtracts ``b_dec`` from its input; a transcoder
(``transcode: true``) does not. Activation ``topk`` (default) or ``groupmax``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sae_core.arch import SAEConfig, SparseCoder
from sae_core.convert import (
    fold_decoder_norm,
    hookpoint_from_site,
    site_from_hookpoint,
    unfold_input_bias,
)
from sae_core.errors import ConfigError, ShapeError
from sae_core.formats.common import (
    dict_field,
    int_field,
    load_safetensors,
    matrix_shape,
    read_json,
    require,
    save_safetensors_atomic,
    write_json_atomic,
)

CFG = "cfg.json"
WEIGHTS = "sae.safetensors"


def is_sparsify(folder: Path) -> bool:
    return (folder / CFG).is_file() and (folder / WEIGHTS).is_file()


def load_sparsify(folder: Path, device: str = "cpu") -> SparseCoder:
    folder = Path(folder)
    cfg = read_json(folder / CFG)
    require(
        cfg,
        ["d_in", "k"],
        folder / CFG,
        hint="sparsify configs record d_in and k; re-save with sae-core",
    )
    t = load_safetensors(folder / WEIGHTS)
    for name in ("encoder.weight", "encoder.bias", "W_dec", "b_dec"):
        if name not in t:
            raise ShapeError(f"{folder / WEIGHTS}: missing tensor {name!r}")
    n, d = matrix_shape(
        t["encoder.weight"], "encoder.weight", folder / WEIGHTS, "[num_latents, d_in]"
    )
    _, d_out = matrix_shape(t["W_dec"], "W_dec", folder / WEIGHTS, "[num_latents, d_out]")
    d_in = int_field(cfg, "d_in", folder / CFG)
    if d != d_in:
        raise ShapeError(
            f"{folder / WEIGHTS}: encoder.weight has shape {tuple(t['encoder.weight'].shape)}, "
            f"expected (num_latents, d_in={d_in}) from cfg.json"
        )
    num = int_field(cfg, "num_latents", folder / CFG, 0) or d_in * int_field(
        cfg, "expansion_factor", folder / CFG, 0
    )
    if num and num != n:
        raise ShapeError(f"{folder / WEIGHTS}: encoder.weight has {n} latents, cfg.json says {num}")
    activation = cfg.get("activation", "topk")
    if activation not in ("topk", "groupmax"):
        raise ConfigError(
            f"{folder / CFG}: unknown sparsify activation {activation!r} (topk or groupmax)"
        )
    transcode = bool(cfg.get("transcode", False))
    extra = dict_field(cfg, "sae_core", folder / CFG)
    site, site_out = site_from_hookpoint(folder.name, transcode)
    sae_cfg = SAEConfig(
        d_in=d_in,
        n_latents=n,
        activation=activation,
        k=int_field(cfg, "k", folder / CFG),
        d_out=d_out,
        input_bias="none" if transcode else "b_dec",
        skip=bool(cfg.get("skip_connection", False)) or "W_skip" in t,
        transcoder=transcode,
        site=extra.get("site", site),
        site_out=extra.get("site_out", site_out),
        model_id=extra.get("model_id"),
        transform=extra.get("transform"),
        exclude_tokens=extra.get("exclude_tokens") or [],
        meta={
            "format": "sparsify",
            "hookpoint": folder.name,
            "multi_topk": cfg.get("multi_topk", False),
        },
    )
    sae = SparseCoder(sae_cfg, device=device)
    tensors = {
        "W_enc": t["encoder.weight"].T,
        "b_enc": t["encoder.bias"],
        "W_dec": t["W_dec"],
        "b_dec": t["b_dec"],
    }
    if sae_cfg.skip:
        if "W_skip" not in t:
            raise ShapeError(f"{folder / WEIGHTS}: skip_connection is set but W_skip is missing")
        tensors["W_skip"] = t["W_skip"]
    return sae.load_canonical(tensors, source=str(folder / WEIGHTS))


def save_sparsify(sae: SparseCoder, root: Path, hookpoint: str | None = None) -> Path:
    """Write ``<root>/<hookpoint>/{cfg.json, sae.safetensors}``; returns the hookpoint folder."""
    cfg = sae.cfg
    if cfg.activation not in ("topk", "groupmax"):
        raise ConfigError(f"sparsify stores topk/groupmax coders only, not {cfg.activation}")
    if cfg.norm_in != "none":
        raise ConfigError("sparsify has no input normalisation; use the SAELens layout")
    if cfg.rescale_by_dec_norm:
        sae = fold_decoder_norm(sae)
    if not cfg.transcoder and cfg.input_bias == "none":
        sae = unfold_input_bias(sae)
    if cfg.transcoder and sae.cfg.input_bias == "b_dec":
        raise ConfigError("a sparsify transcoder never subtracts b_dec; fold the input bias first")
    folder = Path(root) / (hookpoint or hookpoint_from_site(cfg.site))
    meta = {
        "activation": cfg.activation,
        "k": cfg.k,
        "d_in": cfg.d_in,
        "num_latents": cfg.n_latents,
        "expansion_factor": max(1, cfg.n_latents // cfg.d_in),
        "normalize_decoder": True,
        "multi_topk": bool(cfg.meta.get("multi_topk", False)),
        "skip_connection": cfg.skip,
        "transcode": cfg.transcoder,
        "sae_core": {
            "site": cfg.site,
            "site_out": cfg.site_out,
            "model_id": cfg.model_id,
            "transform": cfg.transform,
            "exclude_tokens": list(cfg.exclude_tokens),
        },
    }
    tensors = {
        "encoder.weight": sae.W_enc.T,
        "encoder.bias": sae.b_enc,
        "W_dec": sae.W_dec,
        "b_dec": sae.b_dec,
    }
    if sae.W_skip is not None:
        tensors["W_skip"] = sae.W_skip
    save_safetensors_atomic({k: v.to(torch.float32) for k, v in tensors.items()}, folder / WEIGHTS)
    write_json_atomic(folder / CFG, meta)
    return folder
