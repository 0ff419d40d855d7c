from __future__ import annotations

import numpy as np

from autointerp.format import highlight_mask, n_highlight_runs, render
from autointerp.rng import make_rng
from autointerp.schema import LatentExamples, Window
from autointerp.scorers.base import register
from autointerp.scorers.classifier import ClassifierScorer, Item


def run_lengths(mask: list[bool]) -> list[int]:
    out, cur = [], 0
    for m in mask:
        if m:
            cur += 1
        elif cur:
            out.append(cur)
            cur = 0
    if cur:
        out.append(cur)
    return out


def fake_mask(
    n_tokens: int,
    n_runs: int,
    run_len: list[int],
    rng: np.random.Generator,
    forbidden: list[bool] | None = None,
) -> list[bool]:
    """``n_runs`` highlight runs at uniform positions (never a fixed position); in ``active`` mode
    positions where the latent fires are ``forbidden``."""
    allowed = np.array([not f for f in forbidden]) if forbidden else np.ones(n_tokens, bool)
    cand = np.flatnonzero(allowed)
    mask = [False] * n_tokens
    if len(cand) == 0:
        return mask
    starts = rng.choice(cand, size=min(n_runs, len(cand)), replace=False)
    for s in starts:
        length = int(rng.choice(run_len)) if run_len else 1
        for t in range(int(s), min(n_tokens, int(s) + length)):
            if allowed[t]:
                mask[t] = True
    return mask


def positive_mask(w: Window, a_max: float) -> list[bool]:
    """Real highlights: tokens >= 0.3 a_max; a low-quantile window where no token reaches that
    still shows its peak token, so no positive is presented without any highlight."""
    m = highlight_mask(w, a_max)
    if not any(m):
        peak = int(np.argmax(w.acts))
        m = [i == peak for i in range(len(w.acts))]
    return m


@register("fuzzing")
class FuzzingScorer(ClassifierScorer):
    """Every example is highlighted: positives on their real tokens (>= 0.3 a_max), negatives on
    random spans (count from the positives' distribution, uniform positions, an RNG per example).
    ``mode="active"`` instead shifts real highlights of activating windows onto non-firing tokens."""

    kind = "fuzzing"

    def __init__(self, *args, mode: str = "default", fuzz_mode: str | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.mode = fuzz_mode or mode
        if self.mode not in ("default", "active"):
            raise ValueError(f"unknown fuzzing mode {self.mode!r}; valid: default, active")

    def make_items(
        self, ex: LatentExamples, rng: np.random.Generator
    ) -> tuple[list[Item], list[Item]]:
        test = ex.test[: self.n_pos]
        masks = [positive_mask(w, ex.a_max) for w in test]
        runs = [n_highlight_runs(m) for m in masks] or [1]
        lens = [r for m in masks for r in run_lengths(m)] or [1]
        pos = [
            Item(i, w, 1, "test", render(w.tokens, m))
            for i, (w, m) in enumerate(zip(test, masks, strict=True))
        ]
        off = len(pos)
        neg: list[Item] = []
        if self.mode == "default":
            for i, w in enumerate(ex.negatives[: self.n_neg]):
                r = make_rng(self.seed, "fuzz", ex.latent, f"neg{w.doc_id}:{w.start}")
                m = fake_mask(len(w.tokens), max(1, int(r.choice(runs))), lens, r)
                neg.append(Item(off + i, w, 0, w.kind, render(w.tokens, m)))
        else:
            # active: the 0-class are *other* activating windows with highlights moved off the firing tokens
            pool: list[Window] = (
                ex.test[self.n_pos : self.n_pos + self.n_neg] or ex.test[: self.n_neg]
            )
            for i, w in enumerate(pool):
                r = make_rng(self.seed, "fuzz", ex.latent, f"act{w.doc_id}:{w.start}")
                real = highlight_mask(w, ex.a_max)
                firing = [a > 0 for a in w.acts]
                m = fake_mask(
                    len(w.tokens), max(1, n_highlight_runs(real)), lens, r, forbidden=firing
                )
                neg.append(Item(off + i, w, 0, "fuzz_active", render(w.tokens, m)))
        return pos, neg
