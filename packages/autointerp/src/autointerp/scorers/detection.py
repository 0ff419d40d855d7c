from __future__ import annotations

import numpy as np

from autointerp.format import plain
from autointerp.schema import LatentExamples
from autointerp.scorers.base import register
from autointerp.scorers.classifier import ClassifierScorer, Item


@register("detection")
class DetectionScorer(ClassifierScorer):
    """Label each plain example 1/0 given the explanation; n examples per prompt, JSON list reply."""

    kind = "detection"

    def make_items(
        self, ex: LatentExamples, rng: np.random.Generator
    ) -> tuple[list[Item], list[Item]]:
        pos = [Item(i, w, 1, "test", plain(w)) for i, w in enumerate(ex.test[: self.n_pos])]
        off = len(pos)
        neg = [
            Item(off + i, w, 0, w.kind, plain(w)) for i, w in enumerate(ex.negatives[: self.n_neg])
        ]
        return pos, neg
