"""Sparse autoencoders: every common format, a streaming sparse latent cache, a small TopK trainer,
and MLP-neuron baselines. Models and hooks come from ``lm_kit``."""

from sae_core.arch import SAEConfig, SparseCoder, fvu
from sae_core.codes import SparseCodes
from sae_core.errors import CacheError, ConfigError, FormatError, SAECoreError, ShapeError
from sae_core.formats import detect, load, save

__version__ = "0.1.0"

__all__ = [
    "SAEConfig",
    "SparseCoder",
    "SparseCodes",
    "fvu",
    "detect",
    "load",
    "save",
    "SAECoreError",
    "ConfigError",
    "ShapeError",
    "FormatError",
    "CacheError",
]
