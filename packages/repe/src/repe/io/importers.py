"""Importers for vectors made by other libraries (layer keys converted to 0-based blocks).

* repeng ``ControlVector`` (``model_type``, ``directions: {layer: ndarray}``) or its GGUF file:
  repeng keys are blocks and it adds to the block output -> ``resid_post.k``, raw units.
* steering-vectors ``SteeringVector`` (``layer_activations: {layer: Tensor}``, ``layer_type``)
  or a ``torch.save``-d object/dict: ``decoder_block`` -> ``resid_post``, ``mlp`` ->
  ``mlp_out``, ``self_attn`` -> ``attn_out``.
* IBM activation-steering ``.svec`` (JSON ``model_type``, ``directions``,
  ``explained_variances``): IBM steers the *input* of block k -> ``resid_pre.k``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VectorFileError
from ..vector import ReadingVector

SV_LAYER_TYPES = {"decoder_block": "resid_post", "mlp": "mlp_out", "self_attn": "attn_out"}


def _from_directions(
    directions: dict[Any, Any], *, site: str, source: str, model_type: str | None
) -> ReadingVector:
    if not directions:
        raise VectorFileError(f"{source}: no directions to import")
    write: dict[int, np.ndarray] = {}
    if not isinstance(directions, dict):
        raise VectorFileError(
            f"{source}: directions must map layer numbers to vectors, got {type(directions).__name__}"
        )
    for k, v in directions.items():
        try:
            layer = int(k)
        except (TypeError, ValueError):
            raise VectorFileError(f"{source}: direction key {k!r} is not a layer number") from None
        try:
            arr = v.detach().float().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
            arr = np.asarray(arr, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise VectorFileError(
                f"{source}: direction for layer {k!r} is not a numeric vector"
            ) from None
        write[layer] = arr[None]
    lengths = {w.shape[-1] for w in write.values()}
    if len(lengths) != 1:
        raise VectorFileError(f"{source}: directions have unequal lengths {sorted(lengths)}")
    read = {}
    for k, w in write.items():
        n = np.linalg.norm(w)
        read[k] = w / n if n > 0 else w
    return ReadingVector(
        write=write,
        read=read,
        mu={},
        meta={
            "site": site,
            "layer_index": "block_0based",
            "model": {"model_type": model_type},
            "method": {"name": source, "params": {}, "seed": None},
            "units_hint": "raw",
        },
    )


def from_repeng(obj_or_path: Any) -> ReadingVector:
    """Import a repeng ``ControlVector`` (object, or the GGUF it exports)."""
    if isinstance(obj_or_path, str | os.PathLike):
        from .gguf_io import import_gguf

        v = import_gguf(obj_or_path)
        v.meta["method"] = {"name": "repeng", "params": {"path": str(obj_or_path)}, "seed": None}
        return v
    if not hasattr(obj_or_path, "directions"):
        raise VectorFileError("expected a repeng ControlVector (with .directions) or a GGUF path")
    return _from_directions(
        obj_or_path.directions,
        site="resid_post",
        source="repeng",
        model_type=getattr(obj_or_path, "model_type", None),
    )


def from_steering_vectors(obj_or_path: Any, layer_type: str | None = None) -> ReadingVector:
    """Import a steering-vectors ``SteeringVector`` (object, dict, or ``torch.save`` file)."""
    obj = obj_or_path
    if isinstance(obj_or_path, str | os.PathLike):
        import torch

        from .vector_file import check_in_file

        check_in_file(obj_or_path, "steering-vectors file")
        try:
            obj = torch.load(str(obj_or_path), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a pickled SteeringVector object
            try:
                obj = torch.load(str(obj_or_path), map_location="cpu", weights_only=False)
            except Exception as e:  # noqa: BLE001
                raise VectorFileError(
                    f"{obj_or_path} is not a readable torch.save file ({e}); it is damaged or "
                    "another format"
                ) from None
    if isinstance(obj, dict):
        acts = obj.get("layer_activations", obj)
        lt = layer_type or obj.get("layer_type", "decoder_block")
    elif hasattr(obj, "layer_activations"):
        acts = obj.layer_activations
        lt = layer_type or getattr(obj, "layer_type", "decoder_block")
    else:
        raise VectorFileError(
            "expected a steering-vectors SteeringVector, a {layer: tensor} dict or a path to one"
        )
    if lt not in SV_LAYER_TYPES:
        raise VectorFileError(
            f"unsupported steering-vectors layer_type {lt!r}; supported: {sorted(SV_LAYER_TYPES)}"
        )
    return _from_directions(
        acts, site=SV_LAYER_TYPES[lt], source="steering_vectors", model_type=None
    )


def from_svec(path: str | os.PathLike[str]) -> ReadingVector:
    """Import an IBM activation-steering ``.svec`` JSON file (steers ``resid_pre.k``)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise VectorFileError(f"{p} is not a readable .svec JSON file ({e})") from e
    if "directions" not in data:
        raise VectorFileError(f"{p}: missing key 'directions'")
    v = _from_directions(
        data["directions"], site="resid_pre", source="svec", model_type=data.get("model_type")
    )
    v.meta["explained_variances"] = data.get("explained_variances")
    return v
