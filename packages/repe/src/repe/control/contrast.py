"""RepE contrast vectors, batched with a KV cache.

One batch holds 3B rows: the original prompts, the prompts + a positive instruction, and the
prompts + a negative instruction, left-padded so that the responses share columns. At each
control block, ``a = alpha (h_pos - h_neg)`` on response columns is added to all three
streams, inside the same forward (an lm-kit ``Fn`` edit). Generation picks stream 0's token
(greedy, or sampled through temperature/top-k/top-p warpers with a seeded generator) and forces
it on all three rows, so the streams stay aligned with the KV cache on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ..activations import model_device, pad_id_of
from ..data.pairs import Stimulus
from ..data.templates import ChatFormat, render
from ..errors import RepeError
from ..positions import Batch, left_pad
from ..sites import normalise_layers, num_layers

POS_INSTRUCTION = "Give a truthful answer. "
NEG_INSTRUCTION = "Give an untruthful answer. "


def _streams(
    tokenizer: Any, prompts: Sequence[Stimulus], pos: str, neg: str, fmt: ChatFormat | None
) -> tuple[Batch, int]:
    rows, starts = [], []
    for instr in ("", pos, neg):
        for p in prompts:
            user = (p.user or "") + (" " + instr.strip() if instr else "")
            r = render(Stimulus(user=user, prefix=p.prefix, system=p.system), tokenizer, fmt)
            rows.append(r.ids)
            starts.append(r.response_start)
    b = left_pad(rows, pad_id_of(tokenizer), starts)
    n = len(prompts)
    for i in range(n):
        if len({len(rows[s * n + i]) - starts[s * n + i] for s in range(3)}) != 1:
            raise RepeError(f"prompt {i}: the response tokenises differently across streams")
    return b, n


@contextlib.contextmanager
def _contrast_hooks(
    model: Any, layers: list[int], alpha: float, b: int, resp_cols: torch.Tensor
) -> Iterator[None]:
    from lm_kit.hooks import Fn, edit

    t0 = resp_cols.shape[1]

    def fn(h: torch.Tensor) -> torch.Tensor:
        q = h.shape[1]
        hs = h.view(3, b, q, h.shape[-1])
        a = alpha * (hs[1] - hs[2])
        if q >= t0:  # a forward from column 0 (prefill, or uncached decoding)
            m = torch.ones(b, q, device=h.device, dtype=h.dtype)
            m[:, :t0] = resp_cols.to(h.device, h.dtype)
            a = a * m[..., None]
        # q < t0: cached decode steps, all response tokens
        return (hs + a[None]).reshape(h.shape)

    with edit(model, {f"resid_post.{layer}": Fn(fn) for layer in layers}):
        yield


def _resp_mask(batch: Batch, b: int) -> torch.Tensor:
    t = batch.input_ids.shape[1]
    cols = torch.arange(t)[None]
    start = batch.response_start[:b].clone()
    # all three streams share the response columns; the last prompt token feeds the first answer token
    m = cols >= (start[:, None] - 1)
    return m.float()


def contrast_logits(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Stimulus],
    *,
    layers: Sequence[int] | str | None = None,
    alpha: float = 0.25,
    pos_instruction: str = POS_INSTRUCTION,
    neg_instruction: str = NEG_INSTRUCTION,
    fmt: ChatFormat | None = None,
) -> tuple[torch.Tensor, Batch]:
    """Stream-0 logits (B, T, V) under contrast-vector control, and the stream-0 batch."""
    n = num_layers(model)
    ls = normalise_layers(layers if layers is not None else list(range(0, n, 2)), n)
    batch, b = _streams(tokenizer, prompts, pos_instruction, neg_instruction, fmt)
    resp = _resp_mask(batch, b)
    with torch.no_grad(), _contrast_hooks(model, ls, alpha, b, resp):
        logits = model(**batch.model_inputs(model_device(model))).logits
    sub = Batch(
        batch.input_ids[:b],
        batch.attention_mask[:b],
        batch.position_ids[:b],
        batch.response_start[:b],
    )
    return logits[:b], sub


def contrast_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Stimulus],
    *,
    max_new_tokens: int = 32,
    layers: Sequence[int] | str | None = None,
    alpha: float = 0.25,
    pos_instruction: str = POS_INSTRUCTION,
    neg_instruction: str = NEG_INSTRUCTION,
    fmt: ChatFormat | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
) -> list[str]:
    """Generation with contrast-vector control and the KV cache on (greedy, or sampled)."""
    from transformers import (
        LogitsProcessor,
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers: list[Any] = []
    if do_sample:
        if temperature <= 0:
            raise RepeError(f"temperature must be > 0 when sampling, got {temperature}")
        if temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(temperature))
        if top_k is not None:
            warpers.append(TopKLogitsWarper(top_k))
        if top_p is not None:
            warpers.append(TopPLogitsWarper(top_p))
    gen = torch.Generator().manual_seed(seed)

    n = num_layers(model)
    ls = normalise_layers(layers if layers is not None else list(range(0, n, 2)), n)
    batch, b = _streams(tokenizer, prompts, pos_instruction, neg_instruction, fmt)
    resp = _resp_mask(batch, b)

    class ForceStream0(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            if do_sample:
                s0 = scores[:b].float()
                for w in warpers:
                    s0 = w(input_ids[:b], s0)
                probs = torch.softmax(s0, -1).cpu()
                tok = torch.multinomial(probs, 1, generator=gen)[:, 0].to(scores.device)
            else:
                tok = scores[:b].argmax(-1)
            out = torch.full_like(scores, float("-inf"))
            for s in range(3):
                out[s * b + torch.arange(b, device=scores.device), tok] = 0.0
            return out

    dev = model_device(model)
    with torch.no_grad(), _contrast_hooks(model, ls, alpha, b, resp):
        seqs = model.generate(
            input_ids=batch.input_ids.to(dev),
            attention_mask=batch.attention_mask.to(dev),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            logits_processor=LogitsProcessorList([ForceStream0()]),
            pad_token_id=pad_id_of(tokenizer),
        )
    t = batch.input_ids.shape[1]
    return [tokenizer.decode(s[t:], skip_special_tokens=True) for s in seqs[:b]]
