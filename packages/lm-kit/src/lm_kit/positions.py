"""Token positions that stay right under left/right padding, KV-cache decoding and packing.

One formula everywhere: with mask ``M`` [B, T], the position of a real token among the real
tokens of its row is ``r = cumsum(M) - 1``, and the last real column is
``c_b = T - 1 - argmax(flip(M_b))`` (works for both padding sides).
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from lm_kit.arch import base_model_of
from lm_kit.errors import EditError, MaskError


def _check_mask(mask: torch.Tensor, input_ids: torch.Tensor | None = None) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(mask)
    if mask.dim() != 2:
        raise MaskError(f"attention mask must be 2-D [batch, seq], got shape {tuple(mask.shape)}")
    if input_ids is not None and tuple(input_ids.shape[:2]) != tuple(mask.shape):
        raise MaskError(
            f"attention mask shape {tuple(mask.shape)} does not match input_ids shape "
            f"{tuple(input_ids.shape[:2])}; pass the mask the tokenizer returned for these ids"
        )
    m = mask.to(torch.long)
    empty = (m.sum(-1) == 0).nonzero().flatten().tolist()
    if empty:
        raise MaskError(
            f"row(s) {empty} of the attention mask have no real token (all padding); drop empty "
            "texts before batching"
        )
    return m


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Column of the last real token of each row, for left or right padding ([B] long)."""
    m = _check_mask(mask)
    t = m.shape[1]
    return t - 1 - torch.argmax(torch.flip(m, dims=[1]), dim=1)


def real_positions(mask: torch.Tensor) -> torch.Tensor:
    """``r = cumsum(M) - 1``: position of each column among its row's real tokens (pads: -1 or stale)."""
    m = mask.to(torch.long)
    return m.cumsum(-1) - 1


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """``position_ids`` for a padded batch: ``cumsum(M) - 1`` clamped at 0 (pads get 0).

    Pass these with left padding: models with absolute position embeddings (GPT-2) otherwise
    see shifted positions and give different activations than an unpadded run.
    """
    return real_positions(mask).clamp(min=0)


@dataclass(frozen=True)
class TokenSelection:
    """The real tokens of a batch: ``x[row, col]`` is real token number ``pos`` of document ``row``."""

    row: torch.Tensor
    col: torch.Tensor
    pos: torch.Tensor

    def __len__(self) -> int:
        return int(self.row.numel())

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [B, T, ...] -> [N_real, ...] in row-major order."""
        return x[self.row.to(x.device), self.col.to(x.device)]


def token_selection(mask: torch.Tensor, input_ids: torch.Tensor | None = None) -> TokenSelection:
    """Indices of every real token (pads excluded), with their positions ``r``."""
    m = _check_mask(mask, input_ids)
    row, col = m.nonzero(as_tuple=True)
    pos = real_positions(m)[row, col]
    return TokenSelection(row=row, col=col, pos=pos)


@dataclass(frozen=True)
class Span:
    """Read mode: mean over the tokens after the last occurrence of ``marker_ids`` in each row."""

    marker_ids: tuple[int, ...]


def read_tokens(
    x: torch.Tensor,
    mask: torch.Tensor,
    mode: str | int | Span = "last",
    input_ids: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, TokenSelection]:
    """Reduce activations ``x`` [B, T, d] to per-document rows according to ``mode``.

    ``"last"`` -> [B, d]; ``"mean"`` (masked) -> [B, d]; ``"all"`` -> ([N_real, d], selection);
    an int ``i`` -> real token ``i`` of each row (negative counts from the end of the real tokens);
    ``Span(marker_ids)`` -> mean over the tokens after the marker.
    """
    m = _check_mask(mask, input_ids)
    dev = x.device
    b = torch.arange(x.shape[0], device=dev)
    if mode == "last":
        return x[b, last_token_index(m).to(dev)]
    if mode == "mean":
        w = m.to(dev, x.dtype).unsqueeze(-1)
        return (x * w).sum(1) / w.sum(1)
    if mode == "all":
        sel = token_selection(m)
        return sel.gather(x), sel
    if isinstance(mode, int):
        lengths = m.sum(-1)
        idx = torch.full_like(lengths, mode) if mode >= 0 else lengths + mode
        bad = ((idx < 0) | (idx >= lengths)).nonzero().flatten().tolist()
        if bad:
            raise MaskError(f"token index {mode} is outside the real tokens of row(s) {bad}")
        r = real_positions(m)
        cols = ((r == idx[:, None]) & (m == 1)).to(torch.long).argmax(-1)
        return x[b, cols.to(dev)]
    if isinstance(mode, Span):
        if input_ids is None:
            raise ValueError("Span mode needs input_ids")
        return _span_mean(x, m, input_ids, mode.marker_ids)
    raise ValueError(f"unknown read mode {mode!r}; use 'last', 'mean', 'all', an int, or Span(...)")


def _span_mean(
    x: torch.Tensor, m: torch.Tensor, ids: torch.Tensor, marker: Sequence[int]
) -> torch.Tensor:
    k = len(marker)
    out = []
    for row in range(ids.shape[0]):
        seq = ids[row].tolist()
        starts = [
            i for i in range(len(seq) - k + 1) if seq[i : i + k] == list(marker) and m[row, i]
        ]
        if not starts:
            raise MaskError(f"marker {list(marker)} not found in row {row}")
        sel = m[row].clone()
        sel[: starts[-1] + k] = 0
        if sel.sum() == 0:
            raise MaskError(f"no real token after the marker in row {row}")
        w = sel.to(x.device, x.dtype).unsqueeze(-1)
        out.append((x[row] * w).sum(0) / w.sum())
    return torch.stack(out)


_POSITIONS_HELP = (
    "use None (all), an int >= 0, slice(p0, None) or slice(p0, p1) with 0 <= p0 < p1, a non-empty "
    "set/list of ints >= 0, 'prompt' or 'response' (positions are absolute token positions)"
)


def _is_index(x: Any, *, nonneg: bool) -> bool:
    """An int-like (int, numpy/torch integer) that is not a bool, optionally >= 0."""
    try:
        return not isinstance(x, bool) and (operator.index(x) >= 0 or not nonneg)
    except TypeError:
        return False


def check_positions(op: str, spec: Any) -> None:
    """Validate a ``positions=`` spec (what :meth:`PositionContext.select` reads) once, when the
    edit op ``op`` is built, never inside a hook; a bad spec raises EditError."""
    if spec is None or (isinstance(spec, str) and spec in ("prompt", "response")):
        return
    bad = f"{op}(positions={spec!r}) "
    if isinstance(spec, (str, bool, float)) or (isinstance(spec, torch.Tensor) and spec.dim() == 0):
        raise EditError(bad + f"is not a position spec; {_POSITIONS_HELP}")
    if isinstance(spec, int):
        if spec < 0:
            raise EditError(
                bad + "is negative, but positions count real tokens from 0 and never match a "
                f"negative value (the edit would silently do nothing); {_POSITIONS_HELP}"
            )
        return
    if isinstance(spec, slice):
        if spec.step not in (None, 1):
            raise EditError(
                bad + f"has a step; position slices must have step 1; {_POSITIONS_HELP}"
            )
        for end in (spec.start, spec.stop):
            if end is not None and not _is_index(end, nonneg=True):
                raise EditError(
                    bad + "needs int bounds >= 0 (negative bounds are not counted from the end: "
                    f"positions are absolute); {_POSITIONS_HELP}"
                )
        if spec.start is not None and spec.stop is not None and spec.stop <= spec.start:
            raise EditError(bad + f"selects no position (stop <= start); {_POSITIONS_HELP}")
        return
    if isinstance(spec, Iterator):
        raise EditError(
            bad + "is a one-shot iterator: it would be used up by the first forward pass; pass a "
            "set or list instead"
        )
    if not isinstance(spec, Iterable):
        raise EditError(bad + f"is not a position spec; {_POSITIONS_HELP}")
    items = spec.tolist() if isinstance(spec, torch.Tensor) else list(spec)
    if not items:
        raise EditError(bad + f"is empty, so the edit would never apply; {_POSITIONS_HELP}")
    for x in items:
        if not _is_index(x, nonneg=True):
            raise EditError(bad + f"contains {x!r}, which is not an int >= 0; {_POSITIONS_HELP}")


def _find_cache(args: tuple, kwargs: dict) -> Any:
    for v in list(kwargs.values()) + list(args):
        if v is not None and hasattr(v, "get_seq_length"):
            return v
    return None


class PositionContext:
    """Track the absolute position of every token in each forward pass, KV cache included.

    A ``with_kwargs`` pre-hook on ``base_model`` records, per forward, the current length ``q`` and

    * with a 2-D mask ``M_full`` (HF ``generate`` passes the full mask at every decode step):
      ``positions = r_full[:, -q:]``;
    * else explicit ``position_ids`` when given (e.g. packed documents);
    * else ``cache.get_seq_length() + arange(q)``.

    ``prompt_lengths`` are the real-token counts of the first forward seen (the prompt).
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.positions: torch.Tensor | None = None
        self.real: torch.Tensor | None = None
        self.prompt_lengths: torch.Tensor | None = None
        self.forwards = 0
        # host-side upper bound on the tokens per row seen so far (None: unknown, e.g. packed
        # position_ids); lets ``edit`` warn about positions that can never match, without a sync
        self.max_len: int | None = 0
        self._handle: Any = None

    def _pre(self, _module: nn.Module, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids")
        if ids is None and args and isinstance(args[0], torch.Tensor):
            ids = args[0]
        x = ids if ids is not None else kwargs.get("inputs_embeds")
        if x is None:
            return
        bsz, q = int(x.shape[0]), int(x.shape[1])
        mask = kwargs.get("attention_mask")
        pos_ids = kwargs.get("position_ids")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2:
            m = mask.to(torch.long)
            pos = (m.cumsum(-1) - 1)[:, -q:]
            real = m[:, -q:].bool()
            bound: int | None = int(mask.shape[1])
        elif isinstance(pos_ids, torch.Tensor):
            pos = pos_ids.expand(bsz, q)
            real = torch.ones(bsz, q, dtype=torch.bool, device=x.device)
            bound = None
        else:
            cache = _find_cache(args, kwargs)
            past = int(cache.get_seq_length()) if cache is not None else 0
            pos = (past + torch.arange(q, device=x.device)).expand(bsz, q)
            real = torch.ones(bsz, q, dtype=torch.bool, device=x.device)
            bound = past + q
        if self.max_len is not None:
            self.max_len = None if bound is None else max(self.max_len, bound)
        self.positions, self.real = pos, real
        if self.prompt_lengths is None:
            self.prompt_lengths = real.sum(-1).to(torch.long)
        self.forwards += 1

    def select(self, spec: Any, like: torch.Tensor) -> torch.Tensor | None:
        """Boolean [B, q] mask of the tokens selected by ``spec`` in the current forward."""
        if spec is None:
            return None
        if self.positions is None:
            raise RuntimeError("PositionContext saw no forward pass yet")
        pos = self.positions.to(like.device)
        if pos.shape[1] != like.shape[1] or pos.shape[0] != like.shape[0]:
            raise RuntimeError(
                f"position-selective edit saw a tensor of shape {tuple(like.shape)} but the forward "
                f"has positions of shape {tuple(pos.shape)}"
            )
        if isinstance(spec, str):
            if self.prompt_lengths is None:
                raise RuntimeError("no prompt seen")
            plen = self.prompt_lengths.to(like.device)[:, None]
            if spec == "response":
                sel = pos >= plen
            elif spec == "prompt":
                sel = (pos < plen) & (pos >= 0)
            else:
                raise ValueError(
                    f"positions={spec!r}: use 'prompt', 'response', an int, a slice or a set"
                )
        elif isinstance(spec, slice):
            if spec.step not in (None, 1):
                raise ValueError("position slices must have step 1")
            lo = spec.start if spec.start is not None else 0
            sel = pos >= lo
            if spec.stop is not None:
                sel = sel & (pos < spec.stop)
        elif isinstance(spec, int):
            sel = pos == spec
        elif isinstance(spec, Iterable):
            allowed = torch.tensor(sorted(set(spec)), device=like.device, dtype=pos.dtype)
            sel = torch.isin(pos, allowed)
        else:
            raise ValueError(f"unsupported positions spec {spec!r}")
        if self.real is not None:
            sel = sel & self.real.to(like.device)
        return sel

    def __enter__(self) -> PositionContext:
        base = base_model_of(self.model)
        self._handle = base.register_forward_pre_hook(
            _tag(self._pre), with_kwargs=True, prepend=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def _tag(fn: Any) -> Any:
    """Mark a hook as lm-kit's so ``assert_no_hooks`` can tell it from transformers' own hooks."""
    if inspect.ismethod(fn):
        method = fn

        def fn(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

    fn._lm_kit_hook = True  # type: ignore[attr-defined]
    return fn


# --------------------------------------------------------------------------- packing
def pack_documents(
    docs: Sequence[Sequence[int]], ctx: int, pad_id: int = 0
) -> dict[str, torch.Tensor]:
    """Pack token lists into rows of length ``ctx`` without cross-document attention.

    Returns ``input_ids`` [N, ctx], ``position_ids`` (reset to 0 at each document),
    ``attention_mask`` [N, 1, ctx, ctx] (bool, block-diagonal causal; pads attend to themselves
    only), ``doc_id`` [N, ctx] (-1 on pads) and ``token_mask`` [N, ctx]. Documents longer than
    ``ctx`` raise; packing is greedy first-fit in input order.
    """
    rows: list[list[tuple[int, Sequence[int]]]] = []
    fill: list[int] = []
    for i, d in enumerate(docs):
        if len(d) == 0:
            raise MaskError(f"document {i} is empty")
        if len(d) > ctx:
            raise ValueError(f"document {i} has {len(d)} tokens > ctx={ctx}; split it or raise ctx")
        for r, used in enumerate(fill):
            if used + len(d) <= ctx:
                rows[r].append((i, d))
                fill[r] += len(d)
                break
        else:
            rows.append([(i, d)])
            fill.append(len(d))
    n = len(rows)
    ids = torch.full((n, ctx), pad_id, dtype=torch.long)
    pos = torch.zeros((n, ctx), dtype=torch.long)
    doc = torch.full((n, ctx), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        c = 0
        for i, d in row:
            ids[r, c : c + len(d)] = torch.as_tensor(list(d))
            pos[r, c : c + len(d)] = torch.arange(len(d))
            doc[r, c : c + len(d)] = i
            c += len(d)
    same = doc[:, :, None] == doc[:, None, :]
    causal = torch.ones(ctx, ctx, dtype=torch.bool).tril()
    eye = torch.eye(ctx, dtype=torch.bool)
    mask4d = (same & causal & (doc[:, :, None] >= 0)) | eye
    return {
        "input_ids": ids,
        "position_ids": pos,
        "attention_mask": mask4d[:, None],
        "doc_id": doc,
        "token_mask": doc >= 0,
    }
