"""SAE-space directions (as repeng's ``train_with_sae``): encode both classes with a sparse
autoencoder, fit any finder on the latent codes, and map the latent write vector back through
the decoder's linear part (``w = w_z @ W_dec``; the decoder bias cancels in a difference).

The SAE is duck-typed, so no SAE library is a dependency: it needs ``encode(x: Tensor)`` (or a
tuple whose first item is the codes) and ``W_dec`` of shape (n_latents, D) -- e.g. sae-core's
``SparseCoder`` or SAELens' ``SAE``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import RepeError, VectorMismatchError
from .base import Direction, as_float64, unit


def _encode(sae: Any, x: np.ndarray, w_dec: Any) -> np.ndarray:
    import torch

    t = torch.as_tensor(x, dtype=w_dec.dtype, device=getattr(w_dec, "device", None))
    with torch.no_grad():
        z = sae.encode(t)
    if isinstance(z, tuple):
        z = z[0]
    return z.detach().to("cpu", torch.float64).numpy()


def fit_direction_sae(
    name: str,
    pos: np.ndarray,
    neg: np.ndarray,
    sae: Any,
    *,
    layer: int = 0,
    seed: int = 0,
    k: int = 1,
) -> Direction:
    """Fit ``name`` on the SAE codes of ``pos``/``neg`` and decode the direction to the stream."""
    import torch

    from . import fit_direction

    if not hasattr(sae, "encode") or not hasattr(sae, "W_dec"):
        raise RepeError(
            f"SAE-space fitting needs an SAE with encode() and W_dec (n_latents, D); got "
            f"{type(sae).__name__}"
        )
    pos, neg = as_float64(pos, "positive", layer), as_float64(neg, "negative", layer)
    w_dec = (
        sae.W_dec.detach() if isinstance(sae.W_dec, torch.Tensor) else torch.as_tensor(sae.W_dec)
    )
    if w_dec.dim() != 2 or w_dec.shape[1] != pos.shape[1]:
        raise VectorMismatchError(
            f"SAE decoder W_dec has shape {tuple(w_dec.shape)} but the activations at layer "
            f"{layer} have hidden size {pos.shape[1]}; use the SAE trained for this site"
        )
    zp, zn = _encode(sae, pos, w_dec), _encode(sae, neg, w_dec)
    d = fit_direction(name, zp, zn, layer=layer, seed=seed, k=k)
    wd = w_dec.to("cpu", torch.float64).numpy()
    write = d.write @ wd
    delta = pos.mean(0) - neg.mean(0)
    read = np.stack([unit(w) * (1.0 if w @ delta >= 0 else -1.0) for w in write])
    return Direction(
        read=read,
        write=write,
        mu=(pos.mean(0) + neg.mean(0)) / 2,
        stats={
            **d.stats,
            "sae_space": True,
            "latent_method": name,
            "latent_read": d.read,
            "n_latents": int(wd.shape[0]),
        },
    )
