"""Per-latent bounded "best N" tables updated in O(m log m) per batch (no Python loop over latents)."""

from __future__ import annotations

import numpy as np

_U64_MAX = np.iinfo(np.uint64).max


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def window_hash(seed: int, latent: np.ndarray | int, window: np.ndarray | int) -> np.ndarray:
    """h(seed, latent, window) ∈ [0, 2⁶⁴): independent of batch order and sharding."""
    a = splitmix64(np.asarray(latent, dtype=np.uint64) ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    return splitmix64(a ^ splitmix64(np.asarray(window, dtype=np.uint64)))


class SegmentedTopN:
    """For each of ``n`` segments keep the ``N`` entries with the smallest ``order`` (ties: smaller key).

    Arrays: ``order`` [n, N] (float32 or uint64; empty slots hold the dtype's maximum), ``key``
    [n, N] uint64, ``val`` [n, N] float32. Slots are sorted ascending by (order, key); entries
    tied on both keep arrival order. The result is the top N of everything offered under that
    total order, so it does not depend on how candidates are grouped into calls.

    Cost: offered candidates are pre-filtered against each row's current N-th best and
    buffered (at most ``pending_limit``); a merge sorts only the buffered candidates and
    inserts them into the sorted rows by rank (vectorised binary search), moving only the
    entries behind each row's first insertion point. Reading ``order``/``key``/``val`` or
    ``state()`` merges first.
    """

    def __init__(
        self,
        n: int,
        N: int,
        order_dtype: type = np.float32,
        key_dtype: type = np.uint64,
        store_val: bool = True,
    ):
        """``order_dtype`` float32, uint32 or uint64; ``key_dtype`` uint32 or uint64.

        ``store_val=False`` keeps no value column: ``val`` is then ``-order`` (top-N tables whose
        order is the negated value), which saves 4 B per slot.
        """
        self.n, self.N = n, N
        self.order_dtype = np.dtype(order_dtype)
        self.key_dtype = np.dtype(key_dtype)
        if self.order_dtype.kind == "f":
            if self.order_dtype != np.float32:
                raise ValueError(f"float order must be float32, got {self.order_dtype}")
            self.empty = np.inf
        elif self.order_dtype in (np.dtype(np.uint32), np.dtype(np.uint64)):
            self.empty = np.iinfo(self.order_dtype).max
        else:
            raise ValueError(f"order_dtype must be float32/uint32/uint64, got {self.order_dtype}")
        if self.key_dtype not in (np.dtype(np.uint32), np.dtype(np.uint64)):
            raise ValueError(f"key_dtype must be uint32 or uint64, got {self.key_dtype}")
        if not store_val and self.order_dtype.kind != "f":
            raise ValueError("store_val=False needs a float order (val = -order)")
        self.store_val = store_val
        self._order = np.full((n, N), self.empty, dtype=self.order_dtype)
        self._key = np.zeros((n, N), dtype=self.key_dtype)
        self._val = np.zeros((n, N), dtype=np.float32) if store_val else None
        self._fill = np.zeros(n, dtype=np.int64)  # filled slots per row (derived, not saved)
        self.pending_limit = max(1 << 14, n * N // 32)  # merge every ~N/32 candidates per row
        self._pend: list[tuple[np.ndarray, ...]] = []
        self._npend = 0

    @property
    def slot_bytes(self) -> int:
        """Bytes per table slot (order + key [+ val])."""
        return self.order_dtype.itemsize + self.key_dtype.itemsize + 4 * self.store_val

    @property
    def order(self) -> np.ndarray:
        self._merge()
        return self._order

    @property
    def key(self) -> np.ndarray:
        self._merge()
        return self._key

    @property
    def val(self) -> np.ndarray:
        self._merge()
        if self._val is None:
            return -self._order  # empty slots (+inf) read as -inf
        return self._val

    def table_bytes(self) -> int:
        """Bytes of the [n, N] tables alone."""
        return self.n * self.N * self.slot_bytes

    # measured peak of a merge (tracemalloc): ~100 B per buffered candidate, buffer included
    _MERGE_BYTES_PER_ENTRY = 112

    def buffer_bytes(self) -> int:
        """Bound on the candidate buffer plus the working set of merging it."""
        return self.pending_limit * self._MERGE_BYTES_PER_ENTRY

    def nbytes(self) -> int:
        """Tables plus :meth:`buffer_bytes`."""
        return self.table_bytes() + self.buffer_bytes()

    def update(self, seg: np.ndarray, order: np.ndarray, key: np.ndarray, val: np.ndarray) -> None:
        """Offer candidates (one per distinct (seg, key))."""
        if seg.size == 0:
            return
        order = order.astype(self.order_dtype, copy=False)
        # The rows' N-th best only improves, so a candidate that fails against it now can never
        # enter; one that passes may still lose to others in the buffer (dropped at the merge).
        worst = self._order[seg, -1]
        wkey = self._key[seg, -1]
        ok = (order < worst) | ((order == worst) & (key < wkey))
        if not ok.any():
            return
        self._pend.append(
            (
                np.asarray(seg, dtype=np.int64)[ok],
                order[ok],
                np.asarray(key)[ok].astype(self.key_dtype),
                np.asarray(val)[ok].astype(np.float32)
                if self.store_val
                else np.empty(0, np.float32),
            )
        )
        self._npend += int(ok.sum())
        if self._npend >= self.pending_limit:
            self._merge()

    def _sort_idx(self, seg: np.ndarray, order: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Permutation sorting the candidates by (seg, order, key), ties in input order.

        Fast path: one sort of a packed uint64 (seg high bits, order's sortable bits below);
        when no two packed values are equal it is exactly that order. Otherwise a stable
        lexsort over the candidates (still never over the stored rows).
        """
        segbits = max(1, int(self.n - 1).bit_length())
        if segbits <= 32:
            if self.order_dtype.kind == "f":
                b = (order.astype(np.float32) + np.float32(0)).view(np.uint32)  # -0.0 -> 0.0
                b = np.where(b >> np.uint32(31), ~b, b | np.uint32(1 << 31)).astype(np.uint64)
                packed = (seg.astype(np.uint64) << np.uint64(32)) | b
            elif self.order_dtype.itemsize == 4:  # uint32: exact in the low 32 bits
                packed = (seg.astype(np.uint64) << np.uint64(32)) | order.astype(np.uint64)
            else:
                packed = (seg.astype(np.uint64) << np.uint64(64 - segbits)) | (
                    order >> np.uint64(segbits)
                )
            idx = np.argsort(packed)
            ps = packed[idx]
            if ps.size < 2 or not (ps[1:] == ps[:-1]).any():
                return idx
        return np.lexsort((key, order, seg))

    def _merge(self) -> None:
        if not self._pend:
            return
        seg, order, key, val = (np.concatenate(x) for x in zip(*self._pend, strict=True))
        self._pend, self._npend = [], 0
        idx = self._sort_idx(seg, order, key)
        seg, order, key = seg[idx], order[idx], key[idx]
        val = val[idx] if self.store_val else None
        starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
        lens = np.diff(np.r_[starts, seg.size])
        rank = np.arange(seg.size) - np.repeat(starts, lens)
        keep = rank < self.N  # a candidate ranked >= N among the new alone cannot survive
        if not keep.all():
            seg, order, key, rank = seg[keep], order[keep], key[keep], rank[keep]
            val = val[keep] if val is not None else None
            starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
        touched = seg[starts]
        cnt = np.diff(np.r_[starts, seg.size])
        t = np.repeat(np.arange(touched.size), cnt)
        fill = self._fill[touched]
        base = touched.astype(np.int64) * self.N  # flat offset of each touched row
        fo, fk = self._order.reshape(-1), self._key.reshape(-1)
        fv = self._val.reshape(-1) if self._val is not None else None
        # Rows hold their `fill` entries sorted ascending by (order, key), empty slots after.
        # Vectorised binary search over the filled part: p = number of existing entries
        # <= candidate, so on a full tie the existing entry stays first (a stable sort of
        # existing-then-new would do the same).
        lo = np.zeros(seg.size, dtype=np.int64)
        hi = fill[t].astype(np.int64)
        rb = base[t]
        while True:
            act = np.flatnonzero(lo < hi)
            if act.size == 0:
                break
            la, ha = lo[act], hi[act]
            mid = (la + ha) >> 1
            mo, mk = fo[rb[act] + mid], fk[rb[act] + mid]
            oa, ka = order[act], key[act]
            le = (mo < oa) | ((mo == oa) & (mk <= ka))
            lo[act] = np.where(le, mid + 1, la)
            hi[act] = np.where(le, ha, mid)
        # Existing entries at or after the row's first insertion point move right by the
        # number of new candidates inserted at p <= i; those pushed to rank >= N drop out.
        pmin = lo[starts]
        nmove = fill - pmin
        tot = int(nmove.sum())
        if tot:
            mrow = np.repeat(np.arange(touched.size), nmove)
            i = pmin[mrow] + np.arange(tot) - np.repeat(np.cumsum(nmove) - nmove, nmove)
            ckey = t * (self.N + 1) + lo  # nondecreasing: rows sorted, p sorted within a row
            shift = np.searchsorted(ckey, mrow * (self.N + 1) + i, side="right") - starts[mrow]
            src = base[mrow] + i
            dst = i + shift
            m = dst < self.N
            src, dst = src[m], base[mrow[m]] + dst[m]
            fo[dst], fk[dst] = fo[src], fk[src]  # fancy-index reads copy before the writes
            if fv is not None:
                fv[dst] = fv[src]
        pos = lo + rank
        m = pos < self.N
        dst = rb[m] + pos[m]
        fo[dst], fk[dst] = order[m], key[m]
        if fv is not None:
            fv[dst] = val[m]
        self._fill[touched] = np.minimum(fill + cnt, self.N)

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        d = {f"{prefix}order": self.order, f"{prefix}key": self.key}
        if self.store_val:
            d[f"{prefix}val"] = self.val
        return d

    def load_state(self, d: dict[str, np.ndarray], prefix: str) -> None:
        order, key = d[f"{prefix}order"], d[f"{prefix}key"]
        if order.dtype != self.order_dtype or order.shape != (self.n, self.N):
            raise ValueError(
                f"saved table {prefix}order is {order.dtype}{list(order.shape)}, expected "
                f"{self.order_dtype}{[self.n, self.N]} (state written by another version/config)"
            )
        self._pend, self._npend = [], 0
        self._order = np.array(order, dtype=self.order_dtype)
        self._key = np.array(key, dtype=self.key_dtype)
        self._val = np.array(d[f"{prefix}val"], dtype=np.float32) if self.store_val else None
        self._fill = (self._order != self.empty).sum(axis=1).astype(np.int64)
