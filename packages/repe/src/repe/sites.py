"""Layer-index conventions and model identity.

Layer ``i`` is the 0-based decoder block; negative indices are normalised once (``L + i``).
Conversions: RepE ``hidden_layers=-k`` (k >= 2) is block ``L - k`` (its -1 is post-norm and
has no block equivalent); repeng keys and llama.cpp ``direction.k`` are block k; IBM reads
block k's output but steers ``resid_pre.k``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from numbers import Integral
from typing import Any

from .errors import LayerError, RepeError

#: structural config keys hashed into ``config_sha256`` (stable across transformers 4/5 and
#: GGUF-converted checkpoints)
_CONFIG_KEYS = (
    "model_type",
    "hidden_size",
    "n_embd",
    "num_hidden_layers",
    "n_layer",
    "num_attention_heads",
    "n_head",
    "num_key_value_heads",
    "intermediate_size",
    "n_inner",
    "vocab_size",
    "tie_word_embeddings",
)


def text_config(model: Any) -> Any:
    cfg = model.config
    return getattr(cfg, "text_config", None) or cfg


def num_layers(model: Any) -> int:
    try:
        from lm_kit.arch import find_blocks

        return len(find_blocks(model)[1])
    except Exception:  # pragma: no cover - fall back to the config
        cfg = text_config(model)
        n = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
        if n is None:
            raise RepeError("cannot tell how many layers the model has") from None
        return int(n)


def hidden_size(model: Any) -> int:
    cfg = text_config(model)
    d = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None)
    if d is None:
        raise RepeError("cannot tell the model's hidden size from its config")
    return int(d)


def normalise_layers(layers: int | str | Iterable[int] | None, n_layers: int) -> list[int]:
    """``"all"``/None -> every block; ints may be negative; ``"a-b"`` or ``"a:b"`` ranges.

    Raises LayerError for out-of-range or duplicated layers, naming the valid range.
    """
    valid = f"valid layers are 0..{n_layers - 1} (or -{n_layers}..-1)"
    if layers is None or layers == "all":
        return list(range(n_layers))
    if isinstance(layers, str):
        out: list[int] = []
        for part in layers.split(","):
            part = part.strip()
            sep = "-" if "-" in part[1:] else (":" if ":" in part else None)
            try:
                if sep:
                    a, b = part[: part.index(sep, 1)], part[part.index(sep, 1) + 1 :]
                    lo, hi = _norm(int(a), n_layers, valid), _norm(int(b), n_layers, valid)
                    if lo > hi:
                        raise LayerError(f"empty layer range {part!r} (start > end); {valid}")
                    out.extend(range(lo, hi + 1))
                else:
                    out.append(int(part))
            except ValueError as e:
                if isinstance(e, LayerError):
                    raise
                raise LayerError(
                    f"cannot read layers {layers!r}: {part!r} is not a layer number or range; "
                    f"write e.g. '3', '-1', '2-5' or '1,4,7'; {valid}"
                ) from None
        layers = out
    if isinstance(layers, int):
        layers = [layers]
    try:
        layers = list(layers)
    except TypeError:
        raise LayerError(
            f"layers must be 'all', an int, a range string or ints, got {layers!r}"
        ) from None
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, Integral):
            raise LayerError(f"layer {layer!r} is not an integer block index; {valid}")
    result = [_norm(int(layer), n_layers, valid) for layer in layers]
    if len(set(result)) != len(result):
        raise LayerError(
            f"duplicated layers in {list(layers)} (after normalising negatives); {valid}"
        )
    if not result:
        raise LayerError(f"no layers selected; {valid}")
    return result


def _norm(layer: int, n: int, valid: str) -> int:
    if not -n <= layer < n:
        raise LayerError(f"layer {layer} is out of range for a model with {n} blocks; {valid}")
    return layer + n if layer < 0 else layer


def repe_hidden_layer_to_block(k: int, n_layers: int) -> int:
    """RepE ``hidden_layers=-k`` -> 0-based block ``L - k`` (k >= 2)."""
    if k >= 0:
        raise LayerError("RepE hidden layers are negative (-2, -3, ...)")
    if k == -1:
        raise LayerError(
            "RepE hidden layer -1 is the post-norm output, which no block hook sees; use -2 or "
            "read 'final_norm'"
        )
    return n_layers + k + 1


def config_sha256(model: Any) -> str:
    cfg = text_config(model).to_dict()
    picked = {k: cfg[k] for k in _CONFIG_KEYS if k in cfg and cfg[k] is not None}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


def model_identity(model: Any) -> dict[str, Any]:
    cfg = text_config(model)
    return {
        "id": getattr(model.config, "_name_or_path", None) or getattr(model, "name_or_path", None),
        "revision": getattr(model.config, "_commit_hash", None),
        "model_type": getattr(cfg, "model_type", None),
        "num_layers": num_layers(model),
        "config_sha256": config_sha256(model),
    }
