"""Test helpers: pytest fixtures (``smollm2``, ``tiny_llama``, ``tiny_tok``, ``tiny_models``) are
registered automatically through the ``pytest11`` entry point ``lm_kit.testing.pytest_plugin``."""
