"""Vector files: ``.safetensors`` with float32 ``write.{l}``, ``read.{l}``, ``mu.{l}`` tensors and
JSON metadata under ``__metadata__["repe"]``."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RepeError, VectorFileError, VectorMismatchError
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
    check_out_dir(path)
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


def check_out_dir(path: Path) -> None:
    """The output's folder must exist (a clear error instead of one from the writer)."""
    if not path.parent.is_dir():
        raise VectorFileError(
            f"cannot write {path}: folder {path.parent} does not exist; create it first"
        )


def check_in_file(path: str | os.PathLike[str], what: str = "vector file") -> None:
    p = Path(path)
    if not p.exists():
        raise VectorFileError(f"{what} {p} does not exist; check the path")
    if not p.is_file():
        raise VectorFileError(f"{what} {p} is not a file (a folder?); pass the file itself")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    from safetensors import safe_open

    check_in_file(path)
    try:
        with safe_open(str(path), framework="np") as f:
            raw = (f.metadata() or {}).get("repe")
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise VectorFileError(
            f"{path} is not a readable .safetensors file ({e}); it is damaged or another format "
            "(llama.cpp vectors: repe.import_gguf)"
        ) from None
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
    if not isinstance(meta, dict):
        raise VectorFileError(
            f"{path}: metadata key 'repe' holds a {type(meta).__name__}, not a JSON object; "
            "the file is corrupt"
        )
    for key in REQUIRED_META:
        if key not in meta:
            raise VectorFileError(f"{path}: metadata is missing key {key!r}; the file is corrupt")
    if meta["layer_index"] != "block_0based":
        raise VectorFileError(f"{path}: unsupported layer_index {meta['layer_index']!r}")
    hs = meta["hidden_size"]
    if isinstance(hs, bool) or not isinstance(hs, int) or hs < 1:
        raise VectorFileError(
            f"{path}: metadata key 'hidden_size' must be a positive integer, got {hs!r}"
        )
    for key in ("signs", "calibration", "model"):
        if key in meta and meta[key] is not None and not isinstance(meta[key], dict):
            raise VectorFileError(
                f"{path}: metadata key {key!r} must be a JSON object, got "
                f"{type(meta[key]).__name__}; the file is corrupt"
            )
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
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise VectorFileError(
            f"{path}: cannot read the tensors ({e}); the file is damaged"
        ) from None
    write: dict[int, np.ndarray] = {}
    read: dict[int, np.ndarray] = {}
    mu: dict[int, np.ndarray] = {}
    stores = {"write": write, "read": read, "mu": mu}
    for name, arr in tensors.items():
        kind, _, layer_s = name.partition(".")
        try:
            layer = int(layer_s)
        except ValueError:
            raise VectorFileError(f"{path}: unexpected tensor name {name!r}") from None
        if kind not in stores:
            raise VectorFileError(
                f"{path}: unexpected tensor name {name!r} (expected write.L, read.L, mu.L)"
            )
        stores[kind][layer] = arr
    if not write:
        raise VectorFileError(f"{path} holds no write.L / read.L tensors; the file is corrupt")
    if set(write) != set(read):
        raise VectorFileError(f"{path}: write and read tensors cover different layers")
    stored_hidden = meta["hidden_size"]
    try:
        signs = {int(k): int(v) for k, v in (meta.pop("signs", None) or {}).items()}
        calib = {int(k): v for k, v in (meta.pop("calibration", None) or {}).items()}
        if any(not isinstance(c, dict) for c in calib.values()):
            raise TypeError("each calibration entry must be a JSON object")
    except (TypeError, ValueError) as e:
        raise VectorFileError(
            f"{path}: metadata keys 'signs'/'calibration' must map layer numbers to values ({e}); "
            "the file is corrupt"
        ) from None
    try:
        v = ReadingVector(write=write, read=read, mu=mu, signs=signs, calibration=calib, meta=meta)
    except RepeError as e:
        raise VectorFileError(f"{path}: {e}") from None
    if v.hidden_size != stored_hidden:
        raise VectorFileError(
            f"{path}: metadata key 'hidden_size' says {stored_hidden} but tensors have "
            f"{v.hidden_size}; the file is corrupt"
        )
    if model is not None:
        check_compatible(v, model, strict=strict)
    return v
