"""saprmarks/dictionary_learning layout: ``ae.pt`` (state dict) + ``config.json`` (load only).

AutoEncoder: ``encoder.weight`` [n,d], ``encoder.bias``, ``decoder.weight`` [d,n], ``bias`` (subtracted
from the input, added at decode). AutoEncoderTopK / BatchTopKSAE: + ``b_dec``, buffers ``k``,
``threshold``. JumpReluAutoEncoder: ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``, ``threshold``; it scales
activations by ‖W_dec,i‖ at encode and divides at decode, a scaling the loader removes (canonical
activations are the unscaled ones; the reconstruction is unchanged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sae_core.arch import SAEConfig, SparseCoder
from sae_core.errors import ConfigError, FormatError, ShapeError
from sae_core.formats.common import dict_field, read_json, require

WEIGHTS = "ae.pt"
CFG = "config.json"


def is_dictlearn(folder: Path) -> bool:
    return (folder / WEIGHTS).is_file()


def load_dictlearn(folder: Path, device: str = "cpu") -> SparseCoder:
    folder = Path(folder)
    try:
        sd = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FormatError(f"{folder / WEIGHTS} not found") from None
    except Exception as e:  # pickle with non-tensor objects
        raise FormatError(
            f"{folder / WEIGHTS} cannot be loaded with torch.load(weights_only=True) ({e}); "
            "re-save it as a plain state dict of tensors"
        ) from None
    if not isinstance(sd, dict):
        raise FormatError(
            f"{folder / WEIGHTS} holds a {type(sd).__name__}, not a state dict; save "
            "ae.state_dict() instead"
        )
    trainer = {}
    if (folder / CFG).is_file():
        trainer = dict_field(read_json(folder / CFG), "trainer", folder / CFG)
    cls = trainer.get("dict_class") or _guess_class(sd)
    _require_tensors(sd, _KEYS.get(cls, ()), folder / WEIGHTS, cls)
    site = trainer.get("submodule_name")
    meta = {"format": "dictlearn", "dict_class": cls, "layer": trainer.get("layer")}
    if cls == "AutoEncoder":
        n, d = sd["encoder.weight"].shape
        cfg = SAEConfig(
            d_in=d,
            n_latents=n,
            activation="relu",
            site=site,
            model_id=trainer.get("lm_name"),
            meta=meta,
        )
        t = {
            "W_enc": sd["encoder.weight"].T,
            "b_enc": sd["encoder.bias"],
            "W_dec": sd["decoder.weight"].T,
            "b_dec": sd["bias"],
        }
    elif cls in ("AutoEncoderTopK", "BatchTopKSAE"):
        n, d = sd["encoder.weight"].shape
        k = int(sd["k"]) if "k" in sd else trainer.get("k")
        if k is None:
            raise ConfigError(
                f"{folder}: a {cls} needs k (buffer 'k' in ae.pt or trainer.k in config.json)"
            )
        t = {
            "W_enc": sd["encoder.weight"].T,
            "b_enc": sd["encoder.bias"],
            "W_dec": sd["decoder.weight"].T,
            "b_dec": sd["b_dec"],
        }
        th = sd.get("threshold")
        use_threshold = cls == "BatchTopKSAE" and th is not None and float(th) > 0
        cfg = SAEConfig(
            d_in=d,
            n_latents=n,
            activation="batchtopk" if use_threshold else "topk",
            k=k,
            site=site,
            model_id=trainer.get("lm_name"),
            meta=meta,
        )
        if use_threshold:
            t["threshold"] = torch.as_tensor(th, dtype=torch.float32).reshape(())
    elif cls in ("JumpReluAutoEncoder", "JumpReLUAutoEncoder"):
        d, n = sd["W_enc"].shape
        cfg = SAEConfig(
            d_in=d,
            n_latents=n,
            activation="jumprelu",
            input_bias="b_dec" if trainer.get("apply_b_dec_to_input", False) else "none",
            site=site,
            model_id=trainer.get("lm_name"),
            meta=meta,
        )
        t = {k: sd[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
    else:
        raise ConfigError(f"{folder}: unsupported dictionary_learning class {cls!r}")
    if trainer.get("activation_dim") not in (None, cfg.d_in):
        raise ShapeError(
            f"{folder}: config.json activation_dim={trainer['activation_dim']} but weights have d={cfg.d_in}"
        )
    require({"dict_class": cls}, ["dict_class"], folder / CFG)
    return SparseCoder(cfg, device=device).load_canonical(t, source=str(folder / WEIGHTS))


_KEYS = {
    "AutoEncoder": ("encoder.weight", "encoder.bias", "decoder.weight", "bias"),
    "AutoEncoderTopK": ("encoder.weight", "encoder.bias", "decoder.weight", "b_dec"),
    "BatchTopKSAE": ("encoder.weight", "encoder.bias", "decoder.weight", "b_dec"),
    "JumpReluAutoEncoder": ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
    "JumpReLUAutoEncoder": ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
}


def _require_tensors(sd: dict[str, Any], keys: tuple[str, ...], path: Path, cls: str) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise ShapeError(
            f"{path}: missing tensors {missing} for class {cls}; found {sorted(sd)[:12]} (check "
            "trainer.dict_class in config.json)"
        )
    for k in keys:
        want = 2 if k in ("encoder.weight", "decoder.weight", "W_enc", "W_dec") else None
        if want is not None and (not isinstance(sd[k], torch.Tensor) or sd[k].dim() != want):
            shape = tuple(sd[k].shape) if isinstance(sd[k], torch.Tensor) else type(sd[k]).__name__
            raise ShapeError(f"{path}: tensor {k!r} has shape {shape}, expected a matrix")


def _guess_class(sd: dict[str, torch.Tensor]) -> str:
    if "W_enc" in sd:
        return "JumpReluAutoEncoder"
    if "bias" in sd:
        return "AutoEncoder"
    if "b_dec" in sd:
        return "BatchTopKSAE" if "threshold" in sd else "AutoEncoderTopK"
    raise FormatError(
        "ae.pt matches no known dictionary_learning class; add config.json with trainer.dict_class"
    )
