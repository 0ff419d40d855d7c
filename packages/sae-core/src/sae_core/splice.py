"""Run a model with an SAE spliced in at its site (lm-kit edit hook)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sae_core.errors import ConfigError


def splice(
    model: Any,
    sae: Any,
    error_term: bool = False,
    edit_latents: Callable[[torch.Tensor], torch.Tensor] | None = None,
    site: str | None = None,
):
    """Context manager replacing the activation h at ``sae.cfg.site`` by decode(encode(h)).

    ``error_term=True`` adds back the SAE error h − ŝ(h), so without ``edit_latents`` the model is
    unchanged; ``edit_latents(f) -> f'`` edits the dense latents first (e.g. clamp a latent).
    """
    from lm_kit.hooks import Fn, edit

    site = site or sae.cfg.site
    if site is None:
        raise ConfigError("the coder records no site; pass site= (e.g. site='resid_post.6')")

    def fn(h: torch.Tensor) -> torch.Tensor:
        x = h.float()
        f = sae.encode(x)
        rec = sae.decode(f, x)
        out = sae.decode(edit_latents(f), x) if edit_latents is not None else rec
        if error_term:
            out = out + (x - rec)
        return out.to(h.dtype)

    return edit(model, {site: Fn(fn)})
