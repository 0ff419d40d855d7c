"""Sparse codes in CSR form: the output of ``SparseCoder.encode_sparse``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


def oversubscribed() -> bool:
    """True when the 1-minute load average exceeds 1.5x the CPU count (threads get descheduled;
    a process that keeps every core busy by itself reads about 1x)."""
    try:
        return os.getloadavg()[0] > 1.5 * (os.cpu_count() or 1)
    except (OSError, AttributeError):  # no load average on this platform
        return False


@contextmanager
def serial_ops() -> Iterator[None]:
    """Run the enclosed small CPU tensor ops on one thread when the machine is oversubscribed.

    On a loaded machine a parallel region's thread-pool barrier waits for a descheduled worker:
    measured 5-40 ms per element-wise op on a few thousand values, against 0.1 ms for the whole
    CSR conversion on one thread. On an idle machine the barrier is cheap and switching the pool
    size costs more than it saves (the next forward pass ran 0.4-0.6 s slower per 16k tokens), so
    there the ops run as they are. Results are identical either way (no reduction order changes
    for these ops).
    """
    n = torch.get_num_threads()
    if n == 1 or not oversubscribed():
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@dataclass
class SparseCodes:
    """CSR matrix of latent activations for N inputs.

    ``indptr`` int64 [N+1]; ``idx`` int32 [nnz] latent ids; ``val`` [nnz] activations.
    Row ``r`` holds ``idx[indptr[r]:indptr[r+1]]``; zeros are never stored.
    """

    indptr: torch.Tensor
    idx: torch.Tensor
    val: torch.Tensor
    n_latents: int

    @property
    def n_rows(self) -> int:
        return int(self.indptr.numel() - 1)

    @property
    def nnz(self) -> int:
        return int(self.idx.numel())

    def row_ids(self) -> torch.Tensor:
        """Row index of every stored entry (int64 [nnz])."""
        counts = self.indptr[1:] - self.indptr[:-1]
        return torch.repeat_interleave(torch.arange(self.n_rows, device=counts.device), counts)

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.n_rows, self.n_latents, dtype=self.val.dtype, device=self.val.device)
        out[self.row_ids(), self.idx.long()] = self.val
        return out

    def topk_view(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad each row to ``k`` entries: (idx [N,k] int64, val [N,k]); padding has idx 0, val 0."""
        counts = self.indptr[1:] - self.indptr[:-1]
        if self.n_rows and int(counts.max()) > k:
            raise ValueError(f"a row has {int(counts.max())} entries, more than k={k}")
        rows = self.row_ids()
        slot = torch.arange(self.nnz, device=rows.device) - self.indptr[:-1][rows]
        idx = torch.zeros(self.n_rows, k, dtype=torch.long, device=self.idx.device)
        val = torch.zeros(self.n_rows, k, dtype=self.val.dtype, device=self.val.device)
        idx[rows, slot] = self.idx.long()
        val[rows, slot] = self.val
        return idx, val

    @staticmethod
    def from_dense(f: torch.Tensor, keep_negative: bool = False) -> SparseCodes:
        mask = f != 0 if keep_negative else f > 0
        rows, cols = mask.nonzero(as_tuple=True)
        counts = torch.bincount(rows, minlength=f.shape[0])
        indptr = torch.zeros(f.shape[0] + 1, dtype=torch.long, device=f.device)
        indptr[1:] = torch.cumsum(counts, 0)
        return SparseCodes(indptr, cols.to(torch.int32), f[rows, cols], f.shape[1])

    @staticmethod
    def from_topk(
        idx: torch.Tensor, val: torch.Tensor, n_latents: int, keep_negative: bool = False
    ) -> SparseCodes:
        """Build CSR from fixed-width (idx [N,k], val [N,k]), dropping zero entries."""
        keep = val != 0 if keep_negative else val > 0
        n, k = idx.shape
        if bool(keep.all()):  # the usual TopK case: no masking pass (same entries, same order)
            indptr = torch.arange(0, (n + 1) * k, k, dtype=torch.long, device=idx.device)
            return SparseCodes(indptr, idx.reshape(-1).to(torch.int32), val.reshape(-1), n_latents)
        counts = keep.sum(1)
        indptr = torch.zeros(n + 1, dtype=torch.long, device=idx.device)
        indptr[1:] = torch.cumsum(counts, 0)
        pos = keep.reshape(-1).nonzero().squeeze(1)  # row-major, as boolean-mask indexing
        return SparseCodes(
            indptr,
            idx.reshape(-1).index_select(0, pos).to(torch.int32),
            val.reshape(-1).index_select(0, pos),
            n_latents,
        )
