"""LoRRA (Low-Rank Representation Adaptation, Zou et al. 2023) -- the ``[lorra]`` extra (peft).

Targets come from the adapter-disabled model: for each prompt, three streams (original,
+positive instruction, +negative instruction) share response columns, and the target at
block l is ``h + alpha (h_pos - h_neg)``. The loss is the mean over target layers and over the
last ``max_response_tokens`` real response tokens (masked tokens only -- RepE divides by all
positions) of ``||h_lora - target||_2``. Activations are taken with lm-kit ``Fn`` edits that
return their input unchanged (so gradients flow); the model is never mutated beyond peft's own
LoRA injection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .activations import model_device
from .control.contrast import NEG_INSTRUCTION, POS_INSTRUCTION, _streams
from .data.pairs import Stimulus
from .data.templates import ChatFormat
from .errors import RepeError
from .sites import normalise_layers, num_layers


def _require_peft() -> Any:
    try:
        import peft
    except ImportError as e:
        raise ImportError(
            "LoRRA needs peft: install the extra with `pip install ivory-repe[lorra]` "
            "(or `uv sync --extra lorra`)"
        ) from e
    return peft


@dataclass
class LorraConfig:
    alpha: float = 5.0
    layers: Sequence[int] | None = None  # default: blocks 9, 11, ..., 19 (RepE layers 10..20)
    steps: int = 70
    batch_size: int = 16
    lr: float = 3e-4
    max_response_tokens: int = 64
    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    layers_to_transform: Sequence[int] | None = None  # default 0..20 (clipped to the model)
    seed: int = 0
    pos_instruction: str = POS_INSTRUCTION
    neg_instruction: str = NEG_INSTRUCTION


def _response_mask(batch: Any, b: int, max_tokens: int) -> torch.Tensor:
    t = batch.input_ids.shape[1]
    cols = torch.arange(t)[None]
    start = batch.response_start[:b, None]
    m = cols >= start
    if max_tokens:
        m &= cols >= t - max_tokens
    return m


def train_lorra(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Stimulus],
    config: LorraConfig | None = None,
    *,
    fmt: ChatFormat | None = None,
    progress: bool = False,
) -> tuple[Any, list[float]]:
    """Train LoRA adapters so that plain prompts reproduce the contrast-steered activations.

    ``prompts`` are chat turns whose ``prefix`` is the response to adapt on. Returns the peft
    model (adapters active on ``model``'s own modules) and the loss per step.
    """
    peft = _require_peft()
    from lm_kit.hooks import Fn, edit
    from tqdm.auto import tqdm

    cfg = config or LorraConfig()
    if not prompts:
        raise RepeError("LoRRA needs at least one prompt")
    if any(not p.prefix for p in prompts):
        raise RepeError(
            "every LoRRA prompt needs a response prefix (the tokens the loss is taken on)"
        )
    n = num_layers(model)
    layers = normalise_layers(
        list(cfg.layers) if cfg.layers is not None else [x for x in range(9, 20, 2) if x < n], n
    )
    ltt = (
        list(cfg.layers_to_transform)
        if cfg.layers_to_transform is not None
        else list(range(min(21, n)))
    )
    lcfg = peft.LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        layers_to_transform=ltt,
        bias="none",
        task_type="CAUSAL_LM",
    )
    base = model
    pmodel = peft.get_peft_model(model, lcfg)
    params = [p for p in pmodel.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    dev = model_device(base)
    losses: list[float] = []
    store: dict[int, torch.Tensor] = {}

    def recorder(layer: int) -> Any:
        def f(h: torch.Tensor) -> torch.Tensor:  # records with the graph; returns h unchanged
            store[layer] = h
            return h

        return Fn(f)

    sites = {f"resid_post.{x}": recorder(x) for x in layers}
    for _step in tqdm(range(cfg.steps), desc="LoRRA", disable=not progress):
        idx = rng.choice(len(prompts), size=min(cfg.batch_size, len(prompts)), replace=False)
        batch, b = _streams(
            tokenizer, [prompts[i] for i in idx], cfg.pos_instruction, cfg.neg_instruction, fmt
        )
        mask = _response_mask(batch, b, cfg.max_response_tokens).to(dev)
        inputs = batch.model_inputs(dev)
        store.clear()
        with torch.no_grad(), pmodel.disable_adapter(), edit(base, sites):
            base(**inputs)
            targets = {}
            for x in layers:
                h = store[x].float()
                hs = h.view(3, b, *h.shape[1:])
                targets[x] = (hs[0] + cfg.alpha * (hs[1] - hs[2])).detach()
        base.train()
        with edit(base, sites):
            sub = {k: v[:b] for k, v in inputs.items()}
            base(**sub)
        base.eval()
        m = mask.float()
        loss = torch.stack(
            [
                ((store[x].float() - targets[x]).norm(dim=-1) * m).sum() / m.sum().clamp_min(1.0)
                for x in layers
            ]
        ).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return pmodel, losses
