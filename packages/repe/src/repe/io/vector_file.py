"""Vector files: ``.safetensors`` with float32 ``write.{l}``, ``read.{l}``, ``mu.{l}`` tensors and
JSON metadata under ``__metadata__["repe"]``."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VectorFileError, VectorMismatchError
from ..sites import hidden_size as model_hidden_size
from ..sites import model_identity
from ..vector import SCHEMA_VERSION, ReadingVector

REQUIRED_META = ("schema_version", "hidden_size", "site", "layer_index")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def save_vector(vector: ReadingVector, path: str | os.PathLike[str]) -> Path:
    """Write ``vector`` atomically (temp file + rename)."""
    from safetensors.numpy import save_file

    path = Path(path)
    tensors: dict[str, np.ndarray] = {}
    for layer in vector.layers:
        tensors[f"write.{layer}"] = np.ascontiguousarray(vector.write[layer], dtype=np.float32)
        tensors[f"read.{layer}"] = np.ascontiguousarray(vector.read[layer], dtype=np.float32)
        if layer in vector.mu:
            tensors[f"mu.{layer}"] = np.ascontiguousarray(vector.mu[layer], dtype=np.float32)
    meta = dict(vector.meta)
    meta["schema_version"] = SCHEMA_VERSION
    meta["hidden_size"] = vector.hidden_size
    meta.setdefault("site", "resid_post")
    meta["layer_index"] = "block_0based"
    meta["signs"] = {str(k): int(v) for k, v in vector.signs.items()}
    meta["calibration"] = {str(k): v for k, v in vector.calibration.items()}
    from .._version import __version__

    meta["package_version"] = __version__
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"repe": json.dumps(_jsonable(meta), sort_keys=True)})
    os.replace(tmp, path)
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        raw = (f.metadata() or {}).get("repe")
    if raw is None:
        raise VectorFileError(
            f"{path} has no __metadata__['repe'] entry; it is not a repe vector file (for "
            "repeng/steering-vectors/llama.cpp vectors use repe.from_repeng / "
            "from_steering_vectors / import_gguf)"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise VectorFileError(f"{path}: metadata key 'repe' is not valid JSON ({e})") from e
    for key in REQUIRED_META:
        if key not in meta:
            raise VectorFileError(f"{path}: metadata is missing key {key!r}; the file is corrupt")
    if meta["layer_index"] != "block_0based":
        raise VectorFileError(f"{path}: unsupported layer_index {meta['layer_index']!r}")
    return meta


def check_compatible(vector: ReadingVector, model: Any, *, strict: bool = True) -> None:
    """Raise if ``vector`` cannot apply to ``model`` (hidden size, layers, config hash)."""
    d = model_hidden_size(model)
    if vector.hidden_size != d:
        raise VectorMismatchError(
            f"vector hidden size {vector.hidden_size} does not match the model's hidden size {d}; "
            f"the vector was made for {vector.meta.get('model', {}).get('id') or 'another model'}"
        )
    ident = model_identity(model)
    n = ident["num_layers"]
    bad = [layer for layer in vector.layers if not 0 <= layer < n]
    if bad:
        raise VectorMismatchError(
            f"vector has layers {bad} but the model has blocks 0..{n - 1}; select layers that exist"
        )
    stored = (vector.meta.get("model") or {}).get("config_sha256")
    if stored and stored != ident["config_sha256"]:
        msg = (
            f"vector was trained on a model with config hash {stored[:12]} "
            f"({vector.meta.get('model', {}).get('id')}), this model's is "
            f"{ident['config_sha256'][:12]} ({ident['id']}); pass strict=False to apply anyway"
        )
        if strict:
            raise VectorMismatchError(msg)
        warnings.warn(msg, UserWarning, stacklevel=3)


def load_vector(
    path: str | os.PathLike[str], model: Any = None, *, strict: bool = True
) -> ReadingVector:
    from safetensors.numpy import load_file

    meta = read_metadata(path)
    tensors = load_file(str(path))
    write: dict[int, np.ndarray] = {}
    read: dict[int, np.ndarray] = {}
    mu: dict[int, np.ndarray] = {}
    for name, arr in tensors.items():
        kind, _, layer_s = name.partition(".")
        try:
            layer = int(layer_s)
        except ValueError:
            raise VectorFileError(f"{path}: unexpected tensor name {name!r}") from None
        {"write": write, "read": read, "mu": mu}.get(kind, {})[layer] = arr
    if set(write) != set(read):
        raise VectorFileError(f"{path}: write and read tensors cover different layers")
    signs = {int(k): int(v) for k, v in meta.pop("signs", {}).items()}
    calib = {int(k): v for k, v in meta.pop("calibration", {}).items()}
    v = ReadingVector(write=write, read=read, mu=mu, signs=signs, calibration=calib, meta=meta)
    if v.hidden_size != meta["hidden_size"]:
        raise VectorFileError(
            f"{path}: metadata key 'hidden_size' says {meta['hidden_size']} but tensors have "
            f"{v.hidden_size}"
        )
    if model is not None:
        check_compatible(v, model, strict=strict)
    return v
