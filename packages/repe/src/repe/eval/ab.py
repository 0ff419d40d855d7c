"""A/B probability (CAA): ``P(match) / (P(A) + P(B))`` after the assistant prefix ``(``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..activations import model_device, pad_id_of
from ..data.pairs import Stimulus
from ..data.templates import ChatFormat, render
from ..errors import RepeError
from ..positions import left_pad


@dataclass(frozen=True)
class ABItem:
    question: str
    answer_a: str
    answer_b: str
    match: str  # "A" or "B": the answer showing the behaviour


def letter_ids(tokenizer: Any) -> tuple[int, int]:
    ids = []
    for letter in ("A", "B"):
        toks = tokenizer(letter, add_special_tokens=False)["input_ids"]
        if len(toks) != 1:
            raise RepeError(
                f"the tokenizer splits {letter!r} into {len(toks)} tokens; A/B scoring needs one"
            )
        ids.append(toks[0])
    return ids[0], ids[1]


def ab_prob(
    model: Any,
    tokenizer: Any,
    items: Sequence[ABItem],
    steering: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    *,
    fmt: ChatFormat | None = None,
    batch_size: int = 16,
) -> np.ndarray:
    """Per-item ``P(match) / (P(A) + P(B))``; steer with ``lambda: steer(m, specs, "response")``."""
    if not items:
        raise RepeError("no A/B items given")
    for i, it in enumerate(items):
        if it.match not in ("A", "B"):
            raise RepeError(f"A/B item {i}: match must be 'A' or 'B', got {it.match!r}")
    a_id, b_id = letter_ids(tokenizer)
    rendered = [
        render(
            Stimulus(user=f"{it.question}\n\n(A) {it.answer_a}\n(B) {it.answer_b}", prefix="("),
            tokenizer,
            fmt,
        )
        for it in items
    ]
    dev, pad = model_device(model), pad_id_of(tokenizer)
    out = []
    for i in range(0, len(items), batch_size):
        chunk = rendered[i : i + batch_size]
        b = left_pad([r.ids for r in chunk], pad, [r.response_start for r in chunk])
        ctx = steering() if steering is not None else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            logits = model(**b.model_inputs(dev)).logits[:, -1].float()
        p = torch.softmax(logits, -1)
        pa, pb = p[:, a_id], p[:, b_id]
        for j, it in enumerate(items[i : i + batch_size]):
            num = pa[j] if it.match == "A" else pb[j]
            out.append(float(num / (pa[j] + pb[j])))
    return np.asarray(out)
