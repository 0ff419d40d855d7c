"""Cost of steering on neutral text: mean per-token KL(P_base || P_steer) and perplexity ratio."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..activations import model_device, pad_id_of
from ..errors import RepeError
from ..positions import left_pad

SteerFactory = Callable[[], contextlib.AbstractContextManager[Any]]


@dataclass
class CostReport:
    kl: float  # mean nats per token
    ppl_base: float
    ppl_steer: float
    ppl_ratio: float
    n_tokens: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def neutral_windows(
    tokenizer: Any, texts: Sequence[str], window: int = 64, max_tokens: int = 2048
) -> list[list[int]]:
    """Cut texts into token windows (at most ``max_tokens`` tokens in all)."""
    out: list[list[int]] = []
    total = 0
    for t in texts:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        for i in range(0, len(ids) - 1, window):
            w = ids[i : i + window]
            if len(w) < 2:
                continue
            out.append(w)
            total += len(w)
            if total >= max_tokens:
                return out
    if not out:
        raise RepeError("neutral text is empty; pass a few sentences of ordinary text")
    return out


def _logprobs(
    model: Any, rows: Sequence[Sequence[int]], pad: int, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b = left_pad(rows, pad)
    with torch.no_grad():
        logits = model(**b.model_inputs(dev)).logits.float()
    lp = torch.log_softmax(logits[:, :-1], -1)
    m = (b.attention_mask[:, :-1] & b.attention_mask[:, 1:]).bool().to(dev)
    tgt = b.input_ids[:, 1:].to(dev)
    return lp, m, tgt


def kl_cost(
    model: Any,
    tokenizer: Any,
    neutral: Sequence[str] | Sequence[Sequence[int]],
    steering: SteerFactory,
    *,
    batch_size: int = 8,
    window: int = 64,
    max_tokens: int = 2048,
    base_cache: dict[int, Any] | None = None,
) -> CostReport:
    """Mean per-token KL(P_base || P_steer) over next-token predictions on neutral text.

    ``steering`` is a zero-argument callable returning the steering context, e.g.
    ``lambda: steer(model, specs)``. ``base_cache`` (a dict) keeps the unsteered
    log-probs between calls on the same text (sweeps).
    """
    if neutral and isinstance(neutral[0], str):
        rows = neutral_windows(tokenizer, neutral, window, max_tokens)  # type: ignore[arg-type]
    else:
        rows = [list(r) for r in neutral]  # type: ignore[arg-type]
    dev = model_device(model)
    pad = pad_id_of(tokenizer)
    kl_sum = nll_b = nll_s = 0.0
    n = 0
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        if base_cache is not None and i in base_cache:
            lp_b, m, tgt = base_cache[i]
        else:
            lp_b, m, tgt = _logprobs(model, chunk, pad, dev)
            if base_cache is not None:
                base_cache[i] = (lp_b, m, tgt)
        with steering():
            lp_s, _, _ = _logprobs(model, chunk, pad, dev)
        kl = (lp_b.exp() * (lp_b - lp_s)).sum(-1)
        kl_sum += float(kl[m].sum())
        nll_b -= float(lp_b.gather(-1, tgt[..., None])[..., 0][m].sum())
        nll_s -= float(lp_s.gather(-1, tgt[..., None])[..., 0][m].sum())
        n += int(m.sum())
    ppl_b, ppl_s = float(torch.tensor(nll_b / n).exp()), float(torch.tensor(nll_s / n).exp())
    return CostReport(
        kl=kl_sum / n, ppl_base=ppl_b, ppl_steer=ppl_s, ppl_ratio=ppl_s / ppl_b, n_tokens=n
    )
