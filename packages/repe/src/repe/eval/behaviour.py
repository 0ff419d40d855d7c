"""Behaviour measures: next-token log-odds of a positive vs a negative token set."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..activations import model_device, pad_id_of
from ..data.pairs import Stimulus
from ..data.templates import ChatFormat, render
from ..errors import RepeError
from ..positions import left_pad


def first_token_ids(tokenizer: Any, words: Sequence[str], *, space: bool = True) -> list[int]:
    """Id of the first token of each word (with a leading space by default), deduplicated."""
    ids: list[int] = []
    for w in words:
        toks = tokenizer((" " if space else "") + w, add_special_tokens=False)["input_ids"]
        if not toks:
            raise RepeError(f"word {w!r} tokenises to nothing")
        if toks[0] not in ids:
            ids.append(toks[0])
    return ids


def next_token_probs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Stimulus],
    steering: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    *,
    fmt: ChatFormat | None = None,
) -> torch.Tensor:
    rendered = [render(p, tokenizer, fmt) for p in prompts]
    b = left_pad(
        [r.ids for r in rendered], pad_id_of(tokenizer), [r.response_start for r in rendered]
    )
    ctx = steering() if steering is not None else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        logits = model(**b.model_inputs(model_device(model))).logits[:, -1].float().cpu()
    return torch.softmax(logits, -1)


def token_set_logodds(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Stimulus],
    positive_words: Sequence[str],
    negative_words: Sequence[str],
    steering: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    *,
    fmt: ChatFormat | None = None,
) -> dict[str, float]:
    """Mean over prompts of ``log P(pos set) - log P(neg set)``, plus both set masses."""
    pos_ids = first_token_ids(tokenizer, positive_words)
    neg_ids = first_token_ids(tokenizer, negative_words)
    overlap = set(pos_ids) & set(neg_ids)
    if overlap:
        raise RepeError(f"positive and negative words share first tokens {sorted(overlap)}")
    p = next_token_probs(model, tokenizer, prompts, steering, fmt=fmt)
    pp, pn = p[:, pos_ids].sum(-1), p[:, neg_ids].sum(-1)
    lo = (pp.log() - pn.log()).numpy()
    return {"logodds": float(np.mean(lo)), "p_pos": float(pp.mean()), "p_neg": float(pn.mean())}
