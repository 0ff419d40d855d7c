"""Exact-match reading of answer probabilities from token logprobs."""

from __future__ import annotations

import math

from lm_kit.llm import TokenLogprob


def binary_slot_probs(logprobs: list[TokenLogprob] | None, n: int) -> list[float] | None:
    """``p_i = P("1")/(P("0")+P("1"))`` for the i-th response token whose stripped text is exactly
    ``0`` or ``1``; top-logprob entries are summed over *exact* stripped matches (never substring:
    "10" or "[1" do not count). Returns None if logprobs are missing or the slot count is not n;
    a slot whose alternatives contain neither digit is NaN."""
    if not logprobs:
        return None
    slots = [t for t in logprobs if t.token.strip() in ("0", "1")]
    if len(slots) != n:
        return None
    out = []
    for t in slots:
        top = dict(t.top) if t.top else {}
        top.setdefault(t.token, t.logprob)
        p1 = sum(math.exp(lp) for tok, lp in top.items() if tok.strip() == "1")
        p0 = sum(math.exp(lp) for tok, lp in top.items() if tok.strip() == "0")
        out.append(p1 / (p0 + p1) if p0 + p1 > 0 else math.nan)
    return out


_DIGITS = {str(v): v for v in range(11)}


def expected_value_slots(logprobs: list[TokenLogprob] | None, n: int) -> list[float] | None:
    """Per slot ``E = Σ v p(v) / Σ p(v)`` over v = 0..10 (exact stripped matches), for response tokens
    that are integers 0..10. None when the slot count is not n (e.g. "10" split into two tokens)."""
    if not logprobs:
        return None
    slots = [t for t in logprobs if t.token.strip() in _DIGITS]
    if len(slots) != n:
        return None
    out = []
    for t in slots:
        top = dict(t.top) if t.top else {}
        top.setdefault(t.token, t.logprob)
        num = den = 0.0
        for tok, lp in top.items():
            k = tok.strip()
            if k in _DIGITS:
                p = math.exp(lp)
                num += _DIGITS[k] * p
                den += p
        out.append(num / den if den > 0 else math.nan)
    return out
