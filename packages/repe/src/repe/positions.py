"""Read positions and padded batches.

Read positions reduce a (B, T, D) activation of a left-padded batch to one vector per row:
``last`` (last real token), ``index(k)`` (real token k; negative from the end),
``mean_last(k)`` (mean of the last k real tokens), ``mean_response`` (mean over the assistant
prefix), ``marker(s)`` (mean after the last occurrence of the token ids of ``s``), a callable
``fn(real_token_ids) -> index`` (index into the row's real tokens, negative from the end), and
``all`` (every real token; used for scans).

Write positions (``all``, ``prompt``, ``response``) are computed inside the steering hooks from
lm-kit's absolute positions, so they stay right with ``generate`` and a KV cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .errors import RepeError, unknown


@dataclass(frozen=True)
class ReadPosition:
    kind: str  # last | index | mean_last | mean_response | marker | callable | all
    k: int = 0
    marker: str = ""
    fn: Callable[[list[int]], int] | None = field(default=None, compare=False)

    def describe(self) -> str:
        if self.kind == "callable":
            return f"callable({getattr(self.fn, '__name__', 'fn')})"
        if self.kind in ("index", "mean_last"):
            return f"{self.kind}({self.k})"
        if self.kind == "marker":
            return f"marker({self.marker!r})"
        return self.kind


def index(k: int) -> ReadPosition:
    return ReadPosition("index", k=k)


def mean_last(k: int) -> ReadPosition:
    if k < 1:
        raise RepeError(f"mean_last needs k >= 1, got {k}")
    return ReadPosition("mean_last", k=k)


def marker(text: str) -> ReadPosition:
    return ReadPosition("marker", marker=text)


def at(fn: Callable[[list[int]], int]) -> ReadPosition:
    """Read at ``fn(real_token_ids)``: an index into the row's real tokens (negative from the end)."""
    return ReadPosition("callable", fn=fn)


READ_NAMES = (
    "last",
    "mean_response",
    "all",
    "index(k)",
    "mean_last(k)",
    "marker(str)",
    "a callable ids -> index",
)


def parse_read(spec: str | int | ReadPosition | Callable[[list[int]], int]) -> ReadPosition:
    if isinstance(spec, ReadPosition):
        return spec
    if isinstance(spec, int):
        return index(spec)
    if callable(spec):
        return at(spec)
    s = spec.strip()
    if s in ("last", "mean_response", "all"):
        return ReadPosition(s)
    for name, ctor in (("index", index), ("mean_last", mean_last)):
        if s.startswith(name + "(") and s.endswith(")"):
            return ctor(int(s[len(name) + 1 : -1]))
    if s.startswith("marker(") and s.endswith(")"):
        return marker(s[7:-1].strip("'\""))
    if s.startswith("callable("):
        raise RepeError(
            f"read position {s} was a Python callable and is not stored in the vector file; "
            "pass read=<the same callable> again"
        )
    raise unknown("read position", spec, READ_NAMES)


@dataclass
class Batch:
    """A left-padded batch with ``position_ids = clamp(cumsum(mask) - 1, 0)``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_start: torch.Tensor  # (B,) column of the first response token

    def model_inputs(self, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        d = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
        }
        return {k: v.to(device) for k, v in d.items()} if device is not None else d


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, response_starts: Sequence[int] | None = None
) -> Batch:
    if not rows:
        raise RepeError("cannot build an empty batch")
    t = max(len(r) for r in rows)
    ids = torch.full((len(rows), t), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    starts = torch.zeros(len(rows), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r) == 0:
            raise RepeError(f"row {i} has no tokens")
        ids[i, t - len(r) :] = torch.as_tensor(list(r), dtype=torch.long)
        mask[i, t - len(r) :] = 1
        rs = 0 if response_starts is None else int(response_starts[i])
        starts[i] = t - len(r) + rs
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids, mask, pos, starts)


def reduce_read(
    h: torch.Tensor, batch: Batch, read: ReadPosition, marker_ids: Sequence[int] | None = None
) -> torch.Tensor:
    """(B, T, D) -> (B, D) for every read kind except ``all``."""
    b, t, _ = h.shape
    mask = batch.attention_mask.to(h.device)
    cols = torch.arange(t, device=h.device)[None, :].expand(b, t)
    lengths = mask.sum(-1)
    first = t - lengths  # left padding
    if read.kind == "last":
        return h[:, -1]
    if read.kind == "index":
        k = read.k
        idx = first + k if k >= 0 else t + k
        bad = ((idx < first) | (idx >= t)).nonzero().flatten().tolist()
        if bad:
            raise RepeError(f"read position index({k}) is outside the real tokens of rows {bad}")
        return h[torch.arange(b, device=h.device), idx]
    if read.kind == "callable":
        assert read.fn is not None
        idx = []
        for r, row in enumerate(batch.input_ids.tolist()):
            real = row[int(first[r]) :]
            k = read.fn(real)
            if not isinstance(k, int) or not -len(real) <= k < len(real):
                raise RepeError(
                    f"read callable {read.describe()} returned {k!r} for row {r}, which has "
                    f"{len(real)} real tokens; return an int index in -{len(real)}..{len(real) - 1}"
                )
            idx.append(int(first[r]) + (k if k >= 0 else len(real) + k))
        return h[torch.arange(b, device=h.device), torch.tensor(idx, device=h.device)]
    if read.kind == "mean_last":
        sel = (cols >= t - read.k) & mask.bool()
    elif read.kind == "mean_response":
        sel = (cols >= batch.response_start.to(h.device)[:, None]) & mask.bool()
    elif read.kind == "marker":
        if not marker_ids:
            raise RepeError(f"marker {read.marker!r} tokenises to nothing")
        sel = torch.zeros_like(mask, dtype=torch.bool)
        ids = batch.input_ids.tolist()
        k = len(marker_ids)
        for r in range(b):
            seq = ids[r]
            starts = [
                i for i in range(first[r].item(), t - k + 1) if seq[i : i + k] == list(marker_ids)
            ]
            if not starts:
                raise RepeError(
                    f"marker {read.marker!r} not found in row {r}; pick a marker that every "
                    "stimulus contains"
                )
            sel[r, starts[-1] + k :] = True
    else:
        raise RepeError(f"read position {read.kind!r} cannot be reduced to one vector per row")
    empty = (sel.sum(-1) == 0).nonzero().flatten().tolist()
    if empty:
        raise RepeError(
            f"read position {read.describe()} selects no token in rows {empty} (e.g. an empty "
            "assistant prefix); give every stimulus a prefix or use read='last'"
        )
    w = sel.to(h.dtype)[..., None]
    return (h * w).sum(1) / w.sum(1)
