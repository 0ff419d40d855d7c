"""Deterministic token rows from documents: each document starts a new row (never crossing documents)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sae_core.errors import CacheError


@dataclass
class RowSet:
    tokens: np.ndarray  # [R, ctx] uint16/uint32 model input ids (incl. BOS), right-padded
    rows: np.ndarray  # [R, 3] int64 (doc_id, doc_offset, length)
    recorded: np.ndarray  # [R, ctx] bool: latents are recorded at these positions

    @property
    def n_rows(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def ctx(self) -> int:
        return int(self.tokens.shape[1])

    def digest(self) -> str:
        h = hashlib.sha256()
        for a in (self.tokens, self.rows, self.recorded):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:32]


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size < 65_536 else np.dtype(np.uint32)


def build_rows(
    docs: Iterable[Sequence[int]],
    ctx: int,
    *,
    bos_id: int | None,
    pad_id: int,
    vocab_size: int,
    eos_id: int | None = None,
    mode: Literal["doc", "concat"] = "doc",
    max_tokens: int | None = None,
    exclude_tokens: Iterable[int] = (),
) -> RowSet:
    """Cut documents (token-id lists, no special tokens) into rows of ``ctx`` tokens.

    ``mode="doc"``: every row holds one piece of one document, prefixed with BOS (when the tokenizer
    has one), right-padded; long documents continue on the next row (``doc_offset`` says where).
    ``mode="concat"``: delphi's stream, documents joined by EOS, rows cut every ``ctx - 1`` tokens.
    Recording mask = real ∧ ¬{BOS, pad, separator EOS, exclude_tokens}. ``max_tokens`` caps the real
    (non-pad) tokens, cutting the last row short.
    """
    if ctx < 2:
        raise CacheError(f"ctx must be at least 2, got {ctx}")
    head = 1 if bos_id is not None else 0
    body = ctx - head
    dt = token_dtype(vocab_size)
    excl = set(int(t) for t in exclude_tokens)
    toks: list[np.ndarray] = []
    meta: list[tuple[int, int, int]] = []
    budget = max_tokens if max_tokens is not None else np.inf
    used = 0

    def pieces():
        if mode == "doc":
            for d, doc in enumerate(docs):
                arr = _token_ids(d, doc)
                for off in range(0, len(arr), body):
                    yield d, off, arr[off : off + body], None
        elif mode == "concat":
            buf: list[int] = []
            seps: list[bool] = []
            start_doc, start_off = 0, 0
            for d, doc in enumerate(docs):
                doc = _token_ids(d, doc).tolist()
                for j, t in enumerate(doc + ([eos_id] if eos_id is not None else [])):
                    if not buf:
                        start_doc, start_off = d, j
                    buf.append(int(t))
                    seps.append(j == len(doc))
                    if len(buf) == body:
                        yield start_doc, start_off, np.asarray(buf), np.asarray(seps)
                        buf, seps = [], []
            if buf:
                yield start_doc, start_off, np.asarray(buf), np.asarray(seps)
        else:
            raise CacheError(f"rows must be 'doc' or 'concat', got {mode!r}")

    rec_rows = []
    for d, off, piece, seps in pieces():
        if used >= budget:
            break
        take = int(min(len(piece), budget - used))
        piece = piece[:take]
        if len(piece) == 0:
            continue
        if piece.max(initial=0) >= vocab_size or piece.min(initial=0) < 0:
            raise CacheError(
                f"document {d} has token ids outside [0, {vocab_size}); wrong tokenizer?"
            )
        row = np.full(ctx, pad_id, dtype=dt)
        rec = np.zeros(ctx, dtype=bool)
        if head:
            row[0] = bos_id
        row[head : head + len(piece)] = piece
        rec[head : head + len(piece)] = True
        if seps is not None:
            rec[head : head + len(piece)] &= ~seps[:take]
        if excl:
            rec &= ~np.isin(row, list(excl))
        toks.append(row)
        rec_rows.append(rec)
        meta.append((d, off, head + len(piece)))
        used += len(piece)
    if not toks:
        raise CacheError(
            "the dataset is empty: no document has any token; pass non-empty documents"
        )
    return RowSet(np.stack(toks), np.asarray(meta, dtype=np.int64), np.stack(rec_rows))


def _token_ids(d: int, doc: Any) -> np.ndarray:
    """Document ``d`` as int64 token ids; anything but a flat list of integers is refused (floats
    would be truncated silently, nested lists fail deep inside NumPy)."""
    try:
        arr = np.asarray(doc)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise CacheError(
            f"document {d} is not a flat list of integer token ids (got {type(doc).__name__}"
            f"{'' if arr is None else f' of dtype {arr.dtype}, shape {arr.shape}'}); pass token-id "
            "lists, or strings with tokenizer="
        )
    return arr.astype(np.int64, copy=False)


def tokenize_documents(tokenizer, texts: Iterable[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens (the cache adds BOS itself)."""
    out = []
    for t in texts:
        if not isinstance(t, str):
            raise CacheError(f"documents must be strings or token-id lists, got {type(t).__name__}")
        out.append(list(tokenizer(t, add_special_tokens=False)["input_ids"]))
    return out
