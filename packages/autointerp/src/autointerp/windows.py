"""Windows around activations: peak-aligned (or grid), clipped to their segment, NMS-deduplicated."""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass

import numpy as np

from autointerp.source import ActivationSource


@dataclass(frozen=True)
class WindowSpan:
    start: int  # global token index (inclusive)
    end: int  # exclusive
    peak: int
    max_act: float


def clip_window(peak: int, lo: int, hi: int, ctx: int, peak_offset: int) -> tuple[int, int]:
    """[start, end) of length <= ctx containing ``peak`` at ``peak_offset`` where possible, inside [lo, hi)."""
    start = peak - peak_offset
    end = start + ctx
    if start < lo:
        start, end = lo, min(lo + ctx, hi)
    if end > hi:
        end, start = hi, max(lo, hi - ctx)
    return start, end


def dense_acts(g: np.ndarray, v: np.ndarray, start: int, end: int) -> np.ndarray:
    out = np.zeros(end - start, np.float32)
    a, b = np.searchsorted(g, [start, end])
    out[g[a:b] - start] = v[a:b]
    return out


def window_max(g: np.ndarray, v: np.ndarray, start: int, end: int) -> float:
    a, b = np.searchsorted(g, [start, end])
    return float(v[a:b].max()) if b > a else 0.0


def peak_windows(
    g: np.ndarray,
    v: np.ndarray,
    seg_lo: np.ndarray,
    seg_hi: np.ndarray,
    candidates: np.ndarray,
    ctx: int = 32,
    peak_offset: int = 24,
    align: str = "peak",
) -> list[WindowSpan]:
    """Windows for candidate firing positions (indices into g), in order of decreasing activation.

    Non-maximum suppression: a peak closer than ``ctx`` to an already chosen peak of the same
    segment is dropped, so windows from one latent never overlap heavily.
    """
    order = candidates[np.argsort(-v[candidates], kind="stable")]
    chosen: list[int] = []
    out: list[WindowSpan] = []
    seen_grid: set[int] = set()
    for j in order:
        p = int(g[j])
        lo, hi = int(seg_lo[p]), int(seg_hi[p])
        if align == "grid":
            start = lo + ((p - lo) // ctx) * ctx
            end = min(start + ctx, hi)
            if start in seen_grid:
                continue
            seen_grid.add(start)
        else:
            k = bisect_left(chosen, p)
            near = (k < len(chosen) and chosen[k] - p < ctx and seg_lo[chosen[k]] == lo) or (
                k > 0 and p - chosen[k - 1] < ctx and seg_lo[chosen[k - 1]] == lo
            )
            if near:
                continue
            insort(chosen, p)
            start, end = clip_window(p, lo, hi, ctx, peak_offset)
        out.append(WindowSpan(start, end, p, window_max(g, v, start, end)))
    return out


def grid_windows(
    source: ActivationSource, seg_lo: np.ndarray, seg_hi: np.ndarray, mask: np.ndarray, ctx: int
):
    """All ctx-aligned windows of the valid segments whose tokens satisfy ``mask`` (e.g. negative pool)."""
    valid = np.asarray(source.valid, bool) & mask
    starts = np.flatnonzero(valid & ((np.arange(len(valid)) - seg_lo) % ctx == 0))
    ends = np.minimum(starts + ctx, seg_hi[starts])
    keep = ends - starts >= max(4, ctx // 4)
    return starts[keep].astype(np.int64), ends[keep].astype(np.int64)
