"""TruthfulQA-format multiple choice: MC1 (argmax correct) and MC2 (normalised true mass).

Records: ``{"question": str, "mc1_targets": {"choices": [...], "labels": [1, 0, ...]},
"mc2_targets": {...}}`` (the HF ``truthful_qa`` "multiple_choice" layout); a choice scores the
sum (RepE) or mean of its answer-token log-probs after the question as a chat turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..activations import model_device, pad_id_of
from ..data.jsonl import read_json_objects
from ..data.pairs import Stimulus
from ..data.templates import ChatFormat, render
from ..errors import RepeError, unknown
from ..positions import left_pad


@dataclass
class MCResult:
    mc1: float
    mc2: float
    chance: float
    n: int


def load_mc_jsonl(path: str) -> list[dict[str, Any]]:
    out = []
    for i, d in read_json_objects(path, "MC data"):
        if "question" not in d or "mc1_targets" not in d:
            raise RepeError(f"{path}:{i}: needs 'question' and 'mc1_targets'")
        out.append(d)
    return out


def choice_logprobs(
    model: Any,
    tokenizer: Any,
    question: str,
    choices: Sequence[str],
    steering: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    *,
    fmt: ChatFormat | None = None,
    reduce: str = "sum",
) -> np.ndarray:
    rendered = [render(Stimulus(user=question, prefix=c), tokenizer, fmt) for c in choices]
    b = left_pad(
        [r.ids for r in rendered], pad_id_of(tokenizer), [r.response_start for r in rendered]
    )
    ctx = steering() if steering is not None else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        logits = model(**b.model_inputs(model_device(model))).logits.float().cpu()
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, b.input_ids[:, 1:, None])[..., 0]
    cols = torch.arange(1, b.input_ids.shape[1])[None]
    ans = (cols >= b.response_start[:, None]) & b.attention_mask[:, 1:].bool()
    s = (lp * ans).sum(-1)
    if reduce == "mean":
        s = s / ans.sum(-1).clamp_min(1)
    return s.numpy()


def mc_score(
    model: Any,
    tokenizer: Any,
    records: Sequence[dict[str, Any]],
    steering: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    *,
    fmt: ChatFormat | None = None,
    reduce: str = "sum",
) -> MCResult:
    if not records:
        raise RepeError("no MC records")
    if reduce not in ("sum", "mean"):
        raise unknown("reduce", reduce, ("sum", "mean"))
    mc1, mc2, chance = [], [], []
    for r in records:
        t1 = r["mc1_targets"]
        s = choice_logprobs(
            model, tokenizer, r["question"], t1["choices"], steering, fmt=fmt, reduce=reduce
        )
        labels = np.asarray(t1["labels"])
        mc1.append(float(labels[int(np.argmax(s))] == 1))
        chance.append(1.0 / len(labels))
        t2 = r.get("mc2_targets", t1)
        s2 = (
            s
            if t2 is t1
            else choice_logprobs(
                model, tokenizer, r["question"], t2["choices"], steering, fmt=fmt, reduce=reduce
            )
        )
        p = np.exp(s2 - s2.max())
        l2 = np.asarray(t2["labels"])
        mc2.append(float(p[l2 == 1].sum() / p.sum()))
    return MCResult(
        mc1=float(np.mean(mc1)),
        mc2=float(np.mean(mc2)),
        chance=float(np.mean(chance)),
        n=len(records),
    )
