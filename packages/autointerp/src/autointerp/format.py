"""Turn windows into prompt text: ``<<highlighted>>`` runs, activation lists, displayed values."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from autointerp.schema import Window

HL_OPEN, HL_CLOSE = "<<", ">>"
HIGHLIGHT_FRACTION = 0.3


def sanitize(token: str) -> str:
    """Neutralise text from the corpus that could imitate our markers or answer tags.

    Corpus text is data, never instructions: ``<<``/``>>`` and ``[EXPLANATION]`` / ``[RESPONSE]``
    inside a token cannot change how a reply or a prompt is parsed.
    """
    return (
        token.replace("<<", "‹‹")
        .replace(">>", "››")
        .replace("[EXPLANATION]", "(EXPLANATION)")
        .replace("[RESPONSE]", "(RESPONSE)")
        .replace("\n", "↵")
    )


def displayed_activation(a: float, a_max: float) -> int:
    """``ceil(10 a / a_max)`` clipped to 0..10 (0 for non-firing tokens)."""
    if a <= 0 or a_max <= 0:
        return 0
    return int(min(10, max(1, math.ceil(10.0 * a / a_max - 1e-9))))


def highlight_mask(
    window: Window, a_max: float, fraction: float = HIGHLIGHT_FRACTION
) -> list[bool]:
    thr = fraction * a_max
    return [a >= thr and a > 0 for a in window.acts]


def render(tokens: Sequence[str], mask: Sequence[bool]) -> str:
    """Join tokens, wrapping each maximal run of masked tokens in ``<<…>>``."""
    out: list[str] = []
    inside = False
    for tok, m in zip(tokens, mask, strict=True):
        if m and not inside:
            out.append(HL_OPEN)
            inside = True
        elif not m and inside:
            out.append(HL_CLOSE)
            inside = False
        out.append(sanitize(tok))
    if inside:
        out.append(HL_CLOSE)
    return "".join(out).strip()


def plain(window: Window) -> str:
    return render(window.tokens, [False] * len(window.tokens))


def highlighted(window: Window, a_max: float, fraction: float = HIGHLIGHT_FRACTION) -> str:
    return render(window.tokens, highlight_mask(window, a_max, fraction))


def activation_list(window: Window, a_max: float, top: int = 11) -> str:
    """``("tok", v), …`` for the ``top`` most active tokens, in text order."""
    acts = np.asarray(window.acts, dtype=float)
    idx = [int(i) for i in np.argsort(-acts, kind="stable")[:top] if acts[i] > 0]
    idx.sort()
    parts = [
        f'("{sanitize(window.tokens[i]).strip()}", {displayed_activation(acts[i], a_max)})'
        for i in idx
    ]
    return ", ".join(parts)


def n_highlight_runs(mask: Sequence[bool]) -> int:
    runs, prev = 0, False
    for m in mask:
        if m and not prev:
            runs += 1
        prev = m
    return runs
