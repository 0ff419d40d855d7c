"""Shared foundation: HF causal-LM loading (hub id, local dir, GGUF), hookpoints across architectures, activation capture/edit, and one async LLM client interface (OpenAI-compatible HTTP + local transformers)."""

__version__ = "0.1.0"
