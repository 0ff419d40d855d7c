"""Token-level scans: one forward gives an L x T score matrix (RepE runs T forwards).

Causal attention makes the activation at token t depend only on tokens <= t, so reading every
position of a single forward equals RepE's per-prefix loop (tested).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .activations import model_device
from .data.pairs import Stimulus
from .data.templates import ChatFormat, render
from .errors import LayerError
from .vector import ReadingVector


@dataclass
class Scan:
    scores: np.ndarray  # (L, T)
    layers: list[int]
    tokens: list[str]
    response_start: int

    def detector(self, band: Sequence[int] | None = None) -> np.ndarray:
        """Mean score over a layer band, per token."""
        rows = [self.layers.index(layer) for layer in (band or self.layers)]
        return self.scores[rows].mean(0)

    def flagged(self, threshold: float, band: Sequence[int] | None = None) -> np.ndarray:
        return self.detector(band) > threshold

    def heatmap(
        self, path: str | os.PathLike[str], *, title: str = "", max_tokens: int = 80
    ) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t0 = max(0, len(self.tokens) - max_tokens)
        s = self.scores[:, t0:]
        lim = float(np.nanpercentile(np.abs(s), 98)) or 1.0
        fig, ax = plt.subplots(figsize=(max(6, 0.22 * s.shape[1]), 0.25 * len(self.layers) + 1.8))
        im = ax.imshow(s, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower")
        ax.set_yticks(range(len(self.layers)))
        ax.set_yticklabels([str(x) for x in self.layers], fontsize=6)
        ax.set_xticks(range(s.shape[1]))
        ax.set_xticklabels(
            [t.replace("\n", "\\n") for t in self.tokens[t0:]], rotation=90, fontsize=6
        )
        ax.set_ylabel("block")
        if self.response_start - t0 > 0:
            ax.axvline(self.response_start - t0 - 0.5, color="k", lw=0.8)
        fig.colorbar(im, ax=ax, label="score r.(h - mu)")
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def scan(
    model: Any,
    tokenizer: Any,
    text: str | Stimulus,
    vector: ReadingVector,
    layers: Sequence[int] | None = None,
    *,
    fmt: ChatFormat | None = None,
) -> Scan:
    from lm_kit.hooks import capture, run

    stim = text if isinstance(text, Stimulus) else Stimulus.raw(text)
    r = render(stim, tokenizer, fmt)
    ls = list(layers) if layers is not None else vector.layers
    bad = [x for x in ls if x not in vector.read]
    if bad:
        raise LayerError(f"vector has no layers {bad}; it has {vector.layers}")
    names = [f"{vector.site}.{x}" for x in ls]
    ids = torch.tensor([r.ids], device=model_device(model))
    with capture(model, names, to="cpu", stop_at="auto") as acts:
        run(model, input_ids=ids, attention_mask=torch.ones_like(ids))
    scores = np.stack(
        [vector.score(x, acts[n][0].double().numpy()) for x, n in zip(ls, names, strict=True)]
    )
    tokens = tokenizer.convert_ids_to_tokens(r.ids)
    return Scan(
        scores=scores, layers=ls, tokens=[str(t) for t in tokens], response_start=r.response_start
    )
