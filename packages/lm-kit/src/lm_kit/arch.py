"""Architecture knowledge: which family a model is, where its blocks are, and the site table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch.nn as nn

from lm_kit.errors import BlockDiscoveryError, SiteError

Direction = Literal["in", "out"]

# model_type -> family key of SITE_TABLE
FAMILY_OF_MODEL_TYPE: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "gemma": "llama",
    "olmo": "llama",
    "phi3": "llama",
    "gemma2": "gemma2",
    "gemma3_text": "gemma2",
    "gpt2": "gpt2",
    "gpt_neox": "gpt_neox",
}

# block-list paths relative to the root model, tried in order
FAMILY_BLOCK_PATHS = (
    "model.layers",
    "layers",
    "transformer.h",
    "h",
    "gpt_neox.layers",
    "model.language_model.layers",
    "language_model.layers",
)


@dataclass(frozen=True)
class SiteRule:
    """Where a canonical site lives: ``module`` relative to the block (``scope="block"``) or to
    ``base_model`` (``scope="base"``); ``""`` is the block itself."""

    module: str
    direction: Direction
    scope: Literal["block", "base"] = "block"
    editable: bool = True
    note: str = ""


_RESID = {
    "embed": SiteRule("", "in", note="block-0 input (embeddings incl. positions/scaling)"),
    "resid_pre": SiteRule("", "in"),
    "resid_post": SiteRule("", "out"),
}

SITE_TABLE: dict[str, dict[str, SiteRule]] = {
    "llama": {
        **_RESID,
        "attn_out": SiteRule("self_attn", "out"),
        "mlp_in": SiteRule("post_attention_layernorm", "out"),
        "mlp_out": SiteRule("mlp", "out"),
        "neurons": SiteRule("mlp.down_proj", "in"),
        "attn_z": SiteRule("self_attn.o_proj", "in"),
        "resid_mid": SiteRule("post_attention_layernorm", "in", editable=False),
        "final_norm": SiteRule("norm", "out", scope="base"),
    },
    "gemma2": {
        **_RESID,
        "attn_out": SiteRule("post_attention_layernorm", "out"),
        "mlp_in": SiteRule("pre_feedforward_layernorm", "out"),
        "mlp_out": SiteRule("post_feedforward_layernorm", "out"),
        "neurons": SiteRule("mlp.down_proj", "in"),
        "attn_z": SiteRule("self_attn.o_proj", "in"),
        "resid_mid": SiteRule("pre_feedforward_layernorm", "in", editable=False),
        "final_norm": SiteRule("norm", "out", scope="base"),
    },
    "gpt2": {
        **_RESID,
        "attn_out": SiteRule("attn", "out"),
        "mlp_in": SiteRule("ln_2", "out"),
        "mlp_out": SiteRule("mlp", "out"),
        "neurons": SiteRule("mlp.c_proj", "in"),
        "attn_z": SiteRule("attn.c_proj", "in"),
        "resid_mid": SiteRule("ln_2", "in", editable=False),
        "final_norm": SiteRule("ln_f", "out", scope="base"),
    },
    "gpt_neox": {
        **_RESID,
        "attn_out": SiteRule("attention", "out"),
        "mlp_in": SiteRule("post_attention_layernorm", "out"),
        "mlp_out": SiteRule("mlp", "out"),
        "neurons": SiteRule("mlp.dense_4h_to_h", "in"),
        "attn_z": SiteRule("attention.dense", "in"),
        "resid_mid": SiteRule("post_attention_layernorm", "in", editable=False),
        "final_norm": SiteRule("final_layer_norm", "out", scope="base"),
    },
}
SITE_NAMES: tuple[str, ...] = tuple(SITE_TABLE["llama"])
LAYERLESS_SITES = frozenset({"embed", "final_norm"})


def model_config(model: nn.Module):
    cfg = getattr(model, "config", None)
    return getattr(cfg, "text_config", None) or cfg


def family_of(model: nn.Module) -> str:
    """Family key of ``SITE_TABLE`` for a model (by ``config.model_type``, never by module names)."""
    cfg = getattr(model, "config", None)
    for c in (cfg, getattr(cfg, "text_config", None)):
        mt = getattr(c, "model_type", None)
        if mt in FAMILY_OF_MODEL_TYPE:
            return FAMILY_OF_MODEL_TYPE[mt]
    mt = getattr(cfg, "model_type", None)
    raise SiteError(
        f"no canonical site table for model_type {mt!r} (known: {sorted(FAMILY_OF_MODEL_TYPE)}); "
        "use raw module sites like 'module:layers.3.mlp' instead"
    )


def base_model_of(model: nn.Module) -> nn.Module:
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def num_layers(model: nn.Module) -> int | None:
    cfg = model_config(model)
    return getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)


def _get(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def find_blocks(model: nn.Module, layers_path: str | None = None) -> tuple[str, nn.ModuleList]:
    """Return ``(path, blocks)``: the transformer block list, ``path`` relative to ``model``.

    Order: an explicit ``layers_path`` (relative to ``model``); the family paths
    (``model.layers``, ``transformer.h``, ``gpt_neox.layers``, ``language_model.layers``...);
    the unique ``ModuleList`` under ``base_model`` whose length is ``num_hidden_layers``;
    else an error listing every ``ModuleList`` with its length.
    """
    if layers_path is not None:
        found = _get(model, layers_path)
        if not isinstance(found, nn.ModuleList):
            raise BlockDiscoveryError(
                f"layers_path {layers_path!r} is not a ModuleList of {type(model).__name__}; "
                f"candidates: {_candidates(model)}"
            )
        return layers_path, found
    n = num_layers(model)
    for path in FAMILY_BLOCK_PATHS:
        found = _get(model, path)
        if isinstance(found, nn.ModuleList) and (n is None or len(found) == n):
            return path, found
    lists = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.ModuleList)]
    matching = [(p, m) for p, m in lists if n is not None and len(m) == n]
    if len(matching) == 1:
        return matching[0][0], matching[0][1]  # type: ignore[return-value]
    why = "several" if len(matching) > 1 else "no"
    raise BlockDiscoveryError(
        f"{why} ModuleList of length num_hidden_layers={n} found in {type(model).__name__}; "
        f"pass layers_path= one of: {_candidates(model)}"
    )


def _candidates(model: nn.Module) -> str:
    lists = [
        f"{p} (len {len(m)})" for p, m in model.named_modules() if isinstance(m, nn.ModuleList)
    ]
    return ", ".join(lists) or "(no ModuleList at all)"
