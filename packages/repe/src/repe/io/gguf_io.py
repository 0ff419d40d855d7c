"""llama.cpp control-vector GGUF files.

Contract (llama.cpp ``common_control_vector_load``): ``general.architecture = "controlvector"``,
``controlvector.model_hint``, ``controlvector.layer_count`` and 1-D F32 tensors
``direction.{k}`` (k >= 1) added to block k's output at every position; files are summed
(times their scale) and ``direction.0`` is rejected. llama.cpp ignores the metadata, so we
check model and size ourselves on import.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RepeError, VectorFileError, VectorMismatchError
from ..vector import ReadingVector

ARCH = "controlvector"
_NAME = re.compile(r"^direction\.(\d+)$")


def export_gguf(
    vector: ReadingVector,
    path: str | os.PathLike[str],
    coeff: float = 1.0,
    layers: Iterable[int] | None = None,
    *,
    units: str = "unit",
    model_hint: str | None = None,
    drop_layer0: bool = False,
    operator: str = "add",
    positions: str = "all",
) -> Path:
    """Write ``direction.k = coeff * u_k * v_hat_k`` for each layer k (units as in steering:
    ``unit`` -> 1, ``diff`` -> ||mean diff||, ``raw`` -> the stored write vector)."""
    import gguf

    if operator != "add":
        raise RepeError(f"GGUF control vectors only add; operator {operator!r} cannot be exported")
    if positions != "all":
        raise RepeError(
            f"llama.cpp steers every position; positions={positions!r} cannot be exported"
        )
    if vector.site != "resid_post":
        raise RepeError(
            f"llama.cpp control vectors act on block outputs (resid_post); this vector is for "
            f"{vector.site!r}"
        )
    if not np.isfinite(coeff):
        raise RepeError(f"coeff must be a finite number, got {coeff!r}")
    ls = vector.layers if layers is None else [int(x) for x in layers]
    if 0 in ls:
        if not drop_layer0:
            raise RepeError(
                "llama.cpp rejects direction.0 (block 0); pass drop_layer0=True to leave it out"
            )
        ls = [x for x in ls if x != 0]
    if not ls:
        raise RepeError("no layers left to export")
    from ..control.schedule import unit_scale
    from .vector_file import check_out_dir

    path = Path(path)
    check_out_dir(path)
    tmp = path.with_name(path.name + ".tmp")
    hint = model_hint or (vector.meta.get("model") or {}).get("model_type") or "unknown"
    writer = gguf.GGUFWriter(str(tmp), ARCH)
    writer.add_string(f"{ARCH}.model_hint", str(hint))
    writer.add_uint32(f"{ARCH}.layer_count", len(ls))
    for layer in ls:
        if units == "raw":
            arr = coeff * vector.write[layer][0].astype(np.float32)
        else:
            arr = coeff * unit_scale(vector, layer, units) * vector.direction(layer)
        writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(arr, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path


def import_gguf(
    path: str | os.PathLike[str], model: Any = None, *, hidden_size: int | None = None
) -> ReadingVector:
    """Read a llama.cpp / repeng control-vector GGUF as a ``raw``-unit vector."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001
        raise VectorFileError(f"{path} is not a readable GGUF file ({e})") from e
    hint = None
    field = reader.fields.get(f"{ARCH}.model_hint")
    if field is not None:
        hint = bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    write: dict[int, np.ndarray] = {}
    for t in reader.tensors:
        m = _NAME.match(t.name)
        if not m:
            warnings.warn(f"{path}: ignoring tensor {t.name!r}", UserWarning, stacklevel=2)
            continue
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise VectorFileError(
                f"{path}: tensor {t.name} is {t.tensor_type.name}, control vectors must be F32"
            )
        data = np.asarray(t.data, dtype=np.float32)
        if data.ndim != 1 and not (data.ndim == 2 and 1 in data.shape):
            raise VectorFileError(f"{path}: tensor {t.name} has shape {data.shape}, must be 1-D")
        layer = int(m.group(1))
        if layer == 0:
            warnings.warn(
                f"{path}: direction.0 is rejected by llama.cpp; imported as block 0 anyway",
                UserWarning,
                stacklevel=2,
            )
        write[layer] = data.reshape(-1).copy()
    if not write:
        raise VectorFileError(f"{path} holds no direction.{{k}} tensors")
    lengths = {v.shape[0] for v in write.values()}
    if len(lengths) > 1:
        raise VectorFileError(f"{path}: direction tensors have unequal lengths {sorted(lengths)}")
    d = lengths.pop()
    if hidden_size is not None and d != hidden_size:
        raise VectorMismatchError(f"GGUF vector has hidden size {d} but {hidden_size} was expected")
    read = {}
    for layer, w in write.items():
        n = np.linalg.norm(w)
        read[layer] = w / n if n > 0 else w
    v = ReadingVector(
        write={k: w[None] for k, w in write.items()},
        read={k: r[None] for k, r in read.items()},
        mu={},
        meta={
            "site": "resid_post",
            "layer_index": "block_0based",
            "model": {"model_type": hint},
            "method": {"name": "import_gguf", "params": {"path": str(path)}, "seed": None},
            "units_hint": "raw",
        },
    )
    if model is not None:
        from .vector_file import check_compatible

        check_compatible(v, model)
        mt = getattr(getattr(model, "config", None), "model_type", None)
        if hint and mt and hint not in ("unknown", mt):
            warnings.warn(
                f"GGUF model_hint {hint!r} differs from the model type {mt!r}",
                UserWarning,
                stacklevel=2,
            )
    return v
