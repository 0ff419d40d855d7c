"""Shared helpers of the format readers and writers."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from sae_core.errors import ConfigError, FormatError, ShapeError


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FormatError(f"{path} not found") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); fix or regenerate the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def require(cfg: dict[str, Any], keys: list[str], path: Path, hint: str = "") -> None:
    missing = [k for k in keys if cfg.get(k) is None]
    if missing:
        raise ConfigError(
            f"{path} is missing required field(s) {missing}" + (f"; {hint}" if hint else "")
        )


def int_field(cfg: dict[str, Any], key: str, path: Path, default: Any = None) -> Any:
    """``cfg[key]`` as an int (``default`` when absent or null); a value that is not a whole
    number (a string, 2.5, true) is a :class:`ConfigError` naming the field, not a truncation."""
    v = cfg.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or float(v) != int(v):
        raise ConfigError(f"{path}: field {key!r} must be a whole number, got {v!r}; fix the file")
    return int(v)


def float_field(cfg: dict[str, Any], key: str, path: Path) -> float | None:
    """``cfg[key]`` as a float (None when absent or null), else a :class:`ConfigError`."""
    v = cfg.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{path}: field {key!r} must be a number, got {v!r}; fix the file")
    return float(v)


def dict_field(cfg: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    """``cfg[key]`` when it is a JSON object ({} when absent or null), else a :class:`ConfigError`."""
    v = cfg.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(
            f"{path}: field {key!r} must be a JSON object, got {type(v).__name__}; fix the file"
        )
    return v


def matrix_shape(t: Any, name: str, path: Path, what: str) -> tuple[int, int]:
    """The two dimensions of a weight matrix, or a :class:`ShapeError` naming the tensor."""
    shape = tuple(t.shape)
    if len(shape) != 2:
        raise ShapeError(f"{path}: tensor {name!r} has shape {shape}, expected a matrix {what}")
    return int(shape[0]), int(shape[1])


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def save_safetensors_atomic(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata
    )
    os.replace(tmp, path)


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise FormatError(f"{path} not found") from None
    except Exception as e:  # safetensors raises its own error types
        raise FormatError(f"cannot read {path}: {e}") from None


def weight_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype
