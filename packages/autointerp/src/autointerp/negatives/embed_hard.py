"""Embedding-similar hard negatives: pool windows embedded once, exact cosine search."""

from __future__ import annotations

import numpy as np

from autointerp.embed import Embedder


class EmbeddingIndex:
    def __init__(self, embedder: Embedder, window_ids: np.ndarray, texts: list[str]) -> None:
        self.window_ids = np.asarray(window_ids)
        self.emb = embedder.embed(texts)  # unit-norm rows
        self.embedder = embedder

    def hard_negatives(
        self, query_texts: list[str], n: int, eligible_mask: np.ndarray
    ) -> list[int]:
        """Pool windows most similar to the mean embedding of ``query_texts`` among eligible ones.

        ``eligible_mask`` is over ``self.window_ids`` (True where the latent is 0 on every token).
        """
        if not query_texts or n <= 0:
            return []
        q = self.embedder.embed(query_texts).mean(axis=0)
        q = q / (np.linalg.norm(q) + 1e-12)
        sims = self.emb @ q
        sims[~eligible_mask] = -np.inf
        order = np.argsort(-sims, kind="stable")
        order = order[np.isfinite(sims[order])][:n]
        return [int(self.window_ids[k]) for k in order]
