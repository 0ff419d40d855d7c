"""Gemma Scope layout: ``layer_L/width_W/average_l0_N/params.npz`` (JumpReLU, fp32, no input bias)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from sae_core.arch import SAEConfig, SparseCoder
from sae_core.convert import fold_decoder_norm, fold_input_bias
from sae_core.errors import ConfigError, FormatError, ShapeError
from sae_core.formats.common import matrix_shape

PARAMS = "params.npz"
_KIND_SITE = {"res": "resid_post", "mlp": "mlp_out", "att": "attn_z"}


def is_gemmascope(folder: Path) -> bool:
    return (folder / PARAMS).is_file()


def site_from_path(path: Path) -> str | None:
    text = str(path).replace("\\", "/")
    layer = re.search(r"layer_(\d+)", text)
    kind = re.search(r"gemma-scope-[^/]*-(res|mlp|att)\b", text) or re.search(
        r"/(res|mlp|att)/", text
    )
    if layer and kind:
        return f"{_KIND_SITE[kind.group(1)]}.{layer.group(1)}"
    return None


def load_gemmascope(folder: Path, device: str = "cpu", site: str | None = None) -> SparseCoder:
    folder = Path(folder)
    try:
        with np.load(folder / PARAMS) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise FormatError(f"{folder / PARAMS} not found") from None
    except Exception as e:  # a truncated file raises zipfile.BadZipFile, EOFError, ...
        raise FormatError(
            f"cannot read {folder / PARAMS} ({type(e).__name__}: {e}); the file is damaged or "
            "not an .npz archive: download it again"
        ) from None
    for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
        if name not in arrays:
            raise ShapeError(
                f"{folder / PARAMS}: missing array {name!r} (Gemma Scope JumpReLU needs it)"
            )
        if arrays[name].dtype.kind not in "fiu":
            raise ShapeError(
                f"{folder / PARAMS}: array {name!r} has dtype {arrays[name].dtype}, expected "
                "floating-point weights"
            )
    d, n = matrix_shape(arrays["W_enc"], "W_enc", folder / PARAMS, "[d_in, d_sae]")
    _, d_out = matrix_shape(arrays["W_dec"], "W_dec", folder / PARAMS, "[d_sae, d_out]")
    cfg = SAEConfig(
        d_in=d,
        n_latents=n,
        activation="jumprelu",
        d_out=d_out,
        input_bias="none",
        site=site or site_from_path(folder),
        meta={"format": "gemmascope", "path": str(folder)},
    )
    th = arrays["threshold"]
    if (th < 0).any():
        import warnings

        warnings.warn(f"{folder}: negative thresholds clamped to 0", stacklevel=2)
        arrays["threshold"] = np.maximum(th, 0)
    sae = SparseCoder(cfg, device=device)
    return sae.load_canonical(
        {
            k: torch.from_numpy(np.asarray(arrays[k], dtype=np.float32))
            for k in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
        },
        source=str(folder / PARAMS),
    )


def save_gemmascope(sae: SparseCoder, folder: Path) -> Path:
    if sae.cfg.activation != "jumprelu":
        raise ConfigError(f"Gemma Scope stores JumpReLU SAEs only, not {sae.cfg.activation}")
    if sae.cfg.norm_in != "none" or sae.W_skip is not None:
        raise ConfigError("Gemma Scope has no input normalisation or skip connection")
    if sae.cfg.rescale_by_dec_norm:
        sae = fold_decoder_norm(sae)
    sae = fold_input_bias(sae)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{PARAMS}.tmp.npz"
    np.savez(
        tmp,
        **{
            k: getattr(sae, k).detach().cpu().float().numpy()
            for k in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")
        },
    )
    os.replace(tmp, folder / PARAMS)
    return folder
