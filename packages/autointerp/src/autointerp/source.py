"""Where activations come from: a small protocol, an in-memory implementation, and the
adapter to sae-core's streaming latent cache.

A source exposes the token stream once (ids, document ids, segment ids, recording mask) and
per-latent sparse slices ``(global_token_index, value)`` sorted by token index.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp


@runtime_checkable
class ActivationSource(Protocol):
    n_latents: int
    token_ids: np.ndarray  # [T] int
    doc_ids: np.ndarray  # [T] int (split unit)
    segment_ids: np.ndarray  # [T] int (contiguous run a window may not cross: a row / document)
    valid: np.ndarray  # [T] bool recording mask (BOS/pad/EOS separators False)

    def latent(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...

    def decode(self, ids: Sequence[int]) -> list[str]: ...


class UnknownLatentError(ValueError):
    pass


class SourceError(ValueError):
    """The activation source given is not usable (wrong object, inconsistent arrays)."""


def check_latent(source: ActivationSource, i: int) -> None:
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise UnknownLatentError(
            f"latent ids must be integers, got {i!r} ({type(i).__name__}); "
            f"pass indices in 0..{source.n_latents - 1}"
        )
    if not 0 <= int(i) < source.n_latents:
        raise UnknownLatentError(
            f"latent {i} does not exist: this cache has latents 0..{source.n_latents - 1}; "
            "pass indices in that range (or --latents N to take the first N)"
        )


class InMemorySource:
    """Dense token stream plus a sparse [T, n_latents] activation matrix (tests, synthetic data)."""

    def __init__(
        self,
        token_ids: np.ndarray,
        doc_ids: np.ndarray,
        acts: sp.spmatrix | np.ndarray,
        decode: Callable[[Sequence[int]], list[str]],
        segment_ids: np.ndarray | None = None,
        valid: np.ndarray | None = None,
    ) -> None:
        self.token_ids = np.asarray(token_ids)
        self.doc_ids = np.asarray(doc_ids)
        self.segment_ids = self.doc_ids if segment_ids is None else np.asarray(segment_ids)
        self.valid = (
            np.ones(len(self.token_ids), bool) if valid is None else np.asarray(valid, bool)
        )
        for name in ("doc_ids", "segment_ids", "valid"):
            n = len(getattr(self, name))
            if n != len(self.token_ids):
                raise SourceError(
                    f"{name} has {n} entries but there are {len(self.token_ids)} tokens; "
                    "pass one entry per token"
                )
        m = sp.csc_matrix(acts, dtype=np.float32)
        if m.shape[0] != len(self.token_ids):
            raise ValueError(
                f"activation matrix has {m.shape[0]} rows but there are {len(self.token_ids)} tokens; "
                "pass one row per token"
            )
        m.eliminate_zeros()
        m.sort_indices()
        self._m = m
        self.n_latents = m.shape[1]
        self._decode = decode

    def latent(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        check_latent(self, i)
        lo, hi = self._m.indptr[i], self._m.indptr[i + 1]
        return self._m.indices[lo:hi].astype(np.int64), self._m.data[lo:hi].astype(np.float32)

    def decode(self, ids: Sequence[int]) -> list[str]:
        return self._decode(ids)


class SaeCoreCacheSource:
    """Adapter over ``sae_core.cache.LatentCache`` (one coder of the cache) plus the tokenizer that
    decodes its token ids. Rows are segments (a window never crosses one); ``rows[:, 0]`` are the
    document ids used for the train/test/pool split.

    Signed coders (sae-core ``NeuronCoder``: kept values may be negative) are read as their
    positive part: a unit "fires" where its kept value is > 0 (explanations describe what drives a
    unit up). ``positive_only=False`` keeps signed values (then quantiles/negatives are ill-defined)."""

    def __init__(self, cache, tokenizer, positive_only: bool = True) -> None:
        if isinstance(cache, (str, bytes)) or hasattr(cache, "__fspath__"):
            raise SourceError(
                f"SaeCoreCacheSource takes an open cache, not a path ({cache!r}); pass "
                "sae_core.cache.LatentCache.open(path)"
            )
        missing = [
            a
            for a in ("tokens", "rows", "recorded", "n_latents", "latent")
            if not hasattr(cache, a)
        ]
        if missing:
            raise SourceError(
                f"SaeCoreCacheSource needs a sae_core LatentCache; got a {type(cache).__name__} "
                f"without {', '.join(missing)} (open one with LatentCache.open(path))"
            )
        self.cache = cache
        self.tok = tokenizer
        self.positive_only = positive_only
        tokens = np.asarray(cache.tokens)
        n_rows, ctx = tokens.shape
        self.token_ids = tokens.reshape(-1).astype(np.int64)
        rows = np.asarray(cache.rows)
        row_of = np.repeat(np.arange(n_rows), ctx)
        self.doc_ids = rows[:, 0].astype(np.int64)[row_of]
        self.segment_ids = row_of
        self.valid = np.asarray(cache.recorded, bool).reshape(-1)
        self.n_latents = int(cache.n_latents)
        vocab_n = len(tokenizer)
        if int(self.token_ids.max(initial=0)) >= vocab_n:
            raise ValueError(
                f"the cache holds token id {int(self.token_ids.max())} but the tokenizer has only {vocab_n} "
                "tokens; pass the tokenizer of the model the cache was built with"
            )

    def latent(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        check_latent(self, i)
        g, v = self.cache.latent(int(i))
        g, v = np.asarray(g, np.int64), np.asarray(v, np.float32)
        if self.positive_only:
            keep = v > 0
            g, v = g[keep], v[keep]
        return g, v

    @cached_property
    def _vocab(self) -> list[str]:
        return [self.tok.decode([j]) for j in range(len(self.tok))]

    def decode(self, ids: Sequence[int]) -> list[str]:
        v = self._vocab
        return [v[int(j)] for j in ids]


def segment_bounds(source: ActivationSource) -> tuple[np.ndarray, np.ndarray]:
    """For every token, the [lo, hi) bounds of its valid contiguous segment."""
    seg = np.asarray(source.segment_ids)
    valid = np.asarray(source.valid, bool)
    # a new run starts where the segment changes or validity changes
    key_change = np.ones(len(seg), bool)
    key_change[1:] = (seg[1:] != seg[:-1]) | (valid[1:] != valid[:-1])
    starts = np.flatnonzero(key_change)
    ends = np.append(starts[1:], len(seg))
    run_id = np.cumsum(key_change) - 1
    return starts[run_id], ends[run_id]
