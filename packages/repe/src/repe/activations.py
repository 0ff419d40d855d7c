"""Activations of stimuli at block sites, via lm-kit's capture hooks with early stop.

Batches are left-padded with explicit ``position_ids`` (so GPT-2-style absolute positions are
right), sorted by length, and restored to input order. The forward stops after the deepest
requested block (lm-kit ``run`` + ``capture(stop_at="auto")``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .data.pairs import ContrastPair, Stimulus
from .data.templates import ChatFormat, Rendered, render
from .errors import NonFiniteActivationError, RepeError
from .positions import ReadPosition, left_pad, parse_read, reduce_read


def pad_id_of(tokenizer: Any) -> int:
    pid = getattr(tokenizer, "pad_token_id", None)
    if pid is None:
        pid = getattr(tokenizer, "eos_token_id", None)
    return int(pid) if pid is not None else 0


def model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


def site_names(site: str, layers: Sequence[int]) -> list[str]:
    return [f"{site}.{layer}" for layer in layers]


def render_all(
    stimuli: Sequence[Stimulus], tokenizer: Any, fmt: ChatFormat | None = None
) -> list[Rendered]:
    return [render(s, tokenizer, fmt) for s in stimuli]


def stimulus_activations(
    model: Any,
    tokenizer: Any,
    rendered: Sequence[Rendered],
    layers: Sequence[int],
    *,
    site: str = "resid_post",
    read: str | ReadPosition = "last",
    batch_size: int = 16,
    progress: bool = False,
    desc: str = "activations",
) -> dict[int, np.ndarray] | dict[int, list[np.ndarray]]:
    """Per layer: (n, D) float64 (or, for ``read='all'``, a list of (T_i, D) arrays)."""
    from lm_kit.hooks import capture, run

    rp = parse_read(read)
    marker_ids = (
        tokenizer(rp.marker, add_special_tokens=False)["input_ids"] if rp.kind == "marker" else None
    )
    order = sorted(range(len(rendered)), key=lambda i: len(rendered[i].ids))
    names = site_names(site, layers)
    out: dict[int, list[Any]] = {layer: [None] * len(rendered) for layer in layers}
    dev = model_device(model)
    pad = pad_id_of(tokenizer)
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for idx in tqdm(chunks, desc=desc, disable=not progress, leave=False):
        rows = [rendered[i] for i in idx]
        batch = left_pad([r.ids for r in rows], pad, [r.response_start for r in rows])
        with capture(model, names, to=None, stop_at="auto") as acts:
            run(model, **batch.model_inputs(dev))
        for layer, name in zip(layers, names, strict=True):
            h = acts[name].float()
            if not torch.isfinite(h).all():
                raise NonFiniteActivationError(
                    f"NaN/Inf activations at layer {layer} ({name}); run the model in float32 or "
                    "bfloat16 instead of float16"
                )
            if rp.kind == "all":
                m = batch.attention_mask.bool()
                for j, i in enumerate(idx):
                    out[layer][i] = h[j][m[j].to(h.device)].double().cpu().numpy()
            else:
                red = reduce_read(h, batch, rp, marker_ids).double().cpu().numpy()
                for j, i in enumerate(idx):
                    out[layer][i] = red[j]
    if rp.kind == "all":
        return {layer: list(v) for layer, v in out.items()}
    return {layer: np.stack(v) for layer, v in out.items()}


def pair_activations(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[ContrastPair],
    layers: Sequence[int],
    *,
    site: str = "resid_post",
    read: str | ReadPosition = "last",
    fmt: ChatFormat | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """(X+, X-) per layer, each (n_pairs, D) float64."""
    if not pairs:
        raise RepeError("empty pair list: pass at least 2 contrast pairs")
    rendered = render_all([p.positive for p in pairs] + [p.negative for p in pairs], tokenizer, fmt)
    acts = stimulus_activations(
        model,
        tokenizer,
        rendered,
        layers,
        site=site,
        read=read,
        batch_size=batch_size,
        progress=progress,
        desc="pair activations",
    )
    n = len(pairs)
    pos = {layer: a[:n] for layer, a in acts.items()}  # type: ignore[index]
    neg = {layer: a[n:] for layer, a in acts.items()}  # type: ignore[index]
    return pos, neg
