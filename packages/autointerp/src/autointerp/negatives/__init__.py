"""Negative examples: random, co-occurrence neighbours (sparse), embedding-similar hard negatives."""

from autointerp.negatives.cooccur import CooccurrenceIndex
from autointerp.negatives.embed_hard import EmbeddingIndex
from autointerp.negatives.random import random_negatives

__all__ = ["CooccurrenceIndex", "EmbeddingIndex", "random_negatives"]
