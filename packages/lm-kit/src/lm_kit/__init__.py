"""Shared foundation: causal-LM loading (hub id, local dir, GGUF, offline SmolLM2), hookpoints
across architectures, always-removed capture/edit hooks, padding- and KV-cache-correct positions,
batched extraction, and one async LLM client interface (``lm_kit.llm``).

Heavy modules are imported lazily: ``from lm_kit import load_model`` works without importing
torch until it is called.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "lm_kit.loading",
    "convert_gguf": "lm_kit.loading",
    "load_smollm2": "lm_kit.offline",
    "smollm2_gguf": "lm_kit.offline",
    "tiny_model": "lm_kit.tiny",
    "tiny_tokenizer": "lm_kit.tiny",
    "find_blocks": "lm_kit.arch",
    "Site": "lm_kit.hookpoints",
    "resolve": "lm_kit.hookpoints",
    "list_sites": "lm_kit.hookpoints",
    "hs_index": "lm_kit.hookpoints",
    "to_tl": "lm_kit.hookpoints",
    "from_tl": "lm_kit.hookpoints",
    "capture": "lm_kit.hooks",
    "edit": "lm_kit.hooks",
    "run": "lm_kit.hooks",
    "assert_no_hooks": "lm_kit.hooks",
    "Add": "lm_kit.hooks",
    "Ablate": "lm_kit.hooks",
    "Replace": "lm_kit.hooks",
    "Scale": "lm_kit.hooks",
    "Fn": "lm_kit.hooks",
    "PositionContext": "lm_kit.positions",
    "last_token_index": "lm_kit.positions",
    "token_selection": "lm_kit.positions",
    "pack_documents": "lm_kit.positions",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lm_kit' has no attribute {name!r}")
