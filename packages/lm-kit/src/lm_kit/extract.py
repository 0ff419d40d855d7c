"""Batched activation extraction: length-sorted token-budget batches, early stop, input order kept.

In memory it returns :class:`Activations`; with ``out=`` it streams fp16 ``.npy`` memmaps plus a
manifest into a folder (:class:`ActivationStore`), commits progress atomically after every batch
and resumes at the last committed batch when rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from lm_kit.hookpoints import Site, probe_widths, resolve_many
from lm_kit.hooks import capture, run
from lm_kit.positions import position_ids_from_mask, read_tokens

MANIFEST = "manifest.json"
PROGRESS = "progress.json"
INDEX = "index.npy"


@dataclass
class Activations:
    """In-memory result. ``acts[site]`` is [N_docs, d] (``last``/``mean``/int modes) or
    [N_tokens, d] (``all``), in input order; ``index`` [N_rows, 2] holds (document, position)."""

    acts: dict[str, torch.Tensor]
    index: torch.Tensor
    mode: str
    lengths: list[int] = field(default_factory=list)

    def __getitem__(self, site: str) -> torch.Tensor:
        return self.acts[site]


def _site_file(site: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", site) + ".npy"


def _atomic_write_json(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


class ActivationStore:
    """A finished or partial extraction folder: ``manifest.json``, ``<site>.npy`` (fp16),
    ``index.npy`` (document, position) and ``progress.json``."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        mf = self.path / MANIFEST
        if not mf.is_file():
            raise FileNotFoundError(
                f"{self.path} has no {MANIFEST}: not an lm-kit activation store"
            )
        self.manifest = json.loads(mf.read_text())

    @property
    def sites(self) -> list[str]:
        return list(self.manifest["sites"])

    @property
    def complete(self) -> bool:
        prog = json.loads((self.path / PROGRESS).read_text())
        return prog["batches_done"] == self.manifest["n_batches"]

    def __getitem__(self, site: str) -> np.ndarray:
        return np.load(self.path / self.manifest["files"][site], mmap_mode="r")

    @property
    def index(self) -> np.ndarray:
        return np.load(self.path / INDEX, mmap_mode="r")

    def to_activations(self) -> Activations:
        return Activations(
            acts={s: torch.from_numpy(np.array(self[s])) for s in self.sites},
            index=torch.from_numpy(np.array(self.index)),
            mode=self.manifest["mode"],
            lengths=list(self.manifest["lengths"]),
        )


def _tokenize(
    tok: Any, data: Sequence[Any], max_length: int | None, add_special_tokens: bool
) -> list[list[int]]:
    docs: list[list[int]] = []
    for i, d in enumerate(data):
        if isinstance(d, str):
            ids = tok(d, add_special_tokens=add_special_tokens)["input_ids"]
        else:
            ids = [int(x) for x in d]
        if max_length is not None:
            ids = ids[:max_length]
        if not ids:
            raise ValueError(f"document {i} has no tokens; drop empty texts before extracting")
        docs.append(list(ids))
    return docs


def plan_batches(
    lengths: Sequence[int], batch_tokens: int, max_padding: float = 0.1
) -> list[list[int]]:
    """Sort by length (longest first) and group so that ``n_docs * max_len <= batch_tokens`` and
    the pad share of each batch stays ``<= max_padding`` (a single document always fits).
    Every document appears exactly once, the short final batch included."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    real = 0
    for i in order:
        width = max([lengths[j] for j in cur] + [lengths[i]])
        n = len(cur) + 1
        over_budget = n * width > batch_tokens
        too_padded = 1 - (real + lengths[i]) / (n * width) > max_padding
        if cur and (over_budget or too_padded):
            batches.append(cur)
            cur, real = [], 0
        cur.append(i)
        real += lengths[i]
    if cur:
        batches.append(cur)
    return batches


def _pad_left(docs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(len(d) for d in docs)
    ids = torch.full((len(docs), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(docs), t), dtype=torch.long)
    for r, d in enumerate(docs):
        ids[r, t - len(d) :] = torch.tensor(d)
        mask[r, t - len(d) :] = 1
    return ids, mask


def _fingerprint(
    docs: list[list[int]], sites: list[str], mode: str, batching: str, model_id: str
) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([sites, mode, batching, model_id]).encode())
    for d in docs:
        h.update(np.asarray(d, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:32]


def extract(
    model: nn.Module,
    tok: Any,
    data: Sequence[str] | Sequence[Sequence[int]],
    sites: str | Sequence[str],
    mode: str | int = "last",
    *,
    batch_tokens: int = 8192,
    max_padding: float = 0.1,
    out: str | os.PathLike[str] | None = None,
    max_length: int | None = None,
    add_special_tokens: bool = True,
    progress: bool = True,
) -> Activations | ActivationStore:
    """Extract activations at ``sites`` for every document of ``data`` (texts or token-id lists).

    ``mode``: ``"last"`` (last real token), ``"mean"`` (masked mean), ``"all"`` (every real token,
    pads excluded, with an index of (document, position)), or an int token index (negative counts
    from the end). Batches are length-sorted, hold at most ``batch_tokens`` padded tokens and at
    most ``max_padding`` pads, and are left-padded; the result is in input order and includes the
    short final batch. With ``out=``, results stream to fp16 memmaps and a rerun resumes.
    """
    from tqdm.auto import tqdm

    if isinstance(mode, str) and mode not in ("last", "mean", "all"):
        raise ValueError(f"mode {mode!r} unknown; use 'last', 'mean', 'all' or an int token index")
    resolved: list[Site] = resolve_many(model, sites)
    names = [s.name for s in resolved]
    widths = probe_widths(model, resolved)
    dims = {s.name: int(widths[(s.module_path, s.direction)] or 0) for s in resolved}
    docs = _tokenize(tok, data, max_length, add_special_tokens)
    lengths = [len(d) for d in docs]
    batches = plan_batches(lengths, batch_tokens, max_padding)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    per_token = mode == "all"
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64) if per_token else None
    n_rows = int(sum(lengths)) if per_token else len(docs)
    index = (
        np.concatenate([np.stack([np.full(n, i), np.arange(n)], 1) for i, n in enumerate(lengths)])
        if per_token
        else np.stack([np.arange(len(docs)), np.asarray(lengths) - 1], 1)
    ).astype(np.int64)
    if isinstance(mode, int):
        index[:, 1] = [mode if mode >= 0 else n + mode for n in lengths]
    dev = next(model.parameters()).device

    store_dir = Path(out) if out is not None else None
    arrays: dict[str, Any] = {}
    done = 0
    if store_dir is not None:
        model_id = str(
            getattr(getattr(model, "config", None), "_name_or_path", type(model).__name__)
        )
        fp = _fingerprint(docs, names, str(mode), f"{batch_tokens}/{max_padding}", model_id)
        arrays, done = _open_store(
            store_dir, fp, names, dims, n_rows, index, mode, lengths, len(batches)
        )
    else:
        arrays = {n: torch.zeros(n_rows, dims[n]) for n in names}

    bar = tqdm(total=len(batches), initial=done, desc="extract", unit="batch", disable=not progress)
    try:
        for bi in range(done, len(batches)):
            batch = batches[bi]
            ids, mask = _pad_left([docs[i] for i in batch], pad_id)
            with capture(model, resolved, to="cpu", dtype=torch.float32, stop_at="auto") as cap:
                run(
                    model,
                    input_ids=ids.to(dev),
                    attention_mask=mask.to(dev),
                    position_ids=position_ids_from_mask(mask).to(dev),
                )
            for name in names:
                x = cap[name]
                if per_token:
                    rows_x, sel = read_tokens(x, mask, "all")
                    assert offsets is not None
                    dst = torch.as_tensor(offsets)[torch.tensor(batch)][sel.row] + sel.pos
                else:
                    rows_x = read_tokens(x, mask, mode)
                    dst = torch.tensor(batch)
                if store_dir is not None:
                    arrays[name][dst.numpy()] = rows_x.numpy().astype(np.float16)
                else:
                    arrays[name][dst] = rows_x
            if store_dir is not None:
                for a in arrays.values():
                    a.flush()
                _atomic_write_json(store_dir / PROGRESS, {"batches_done": bi + 1})
            bar.update(1)
    finally:
        bar.close()
    if store_dir is not None:
        return ActivationStore(store_dir)
    return Activations(acts=arrays, index=torch.from_numpy(index), mode=str(mode), lengths=lengths)


def _open_store(
    d: Path,
    fingerprint: str,
    names: list[str],
    dims: dict[str, int],
    n_rows: int,
    index: np.ndarray,
    mode: Any,
    lengths: list[int],
    n_batches: int,
) -> tuple[dict[str, Any], int]:
    d.mkdir(parents=True, exist_ok=True)
    mf = d / MANIFEST
    files = {n: _site_file(n) for n in names}
    if mf.is_file():
        manifest = json.loads(mf.read_text())
        if manifest.get("fingerprint") != fingerprint:
            raise ValueError(
                f"{d} already holds a different extraction (other data, sites, mode or model); "
                "pass another out= folder or delete this one"
            )
        prog = (
            json.loads((d / PROGRESS).read_text())
            if (d / PROGRESS).is_file()
            else {"batches_done": 0}
        )
        arrays = {n: np.load(d / files[n], mmap_mode="r+") for n in names}
        return arrays, int(prog["batches_done"])
    arrays = {
        n: np.lib.format.open_memmap(
            d / files[n], mode="w+", dtype=np.float16, shape=(n_rows, dims[n])
        )
        for n in names
    }
    np.save(d / INDEX, index)
    _atomic_write_json(d / PROGRESS, {"batches_done": 0})
    _atomic_write_json(
        mf,
        {
            "format": "lm-kit-activations/1",
            "fingerprint": fingerprint,
            "sites": names,
            "files": files,
            "widths": dims,
            "mode": str(mode),
            "dtype": "float16",
            "n_rows": n_rows,
            "n_docs": len(lengths),
            "lengths": lengths,
            "n_batches": n_batches,
            "index": INDEX,
        },
    )
    return arrays, 0
