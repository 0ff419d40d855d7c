"""Export to EleutherAI delphi's cache layout: per latent range ``<start>_<end>.safetensors`` with
``locations`` [nnz, 3] int64 (sequence, position, latent), ``activations`` [nnz] f32, ``tokens``
[n_rows, ctx] int64, plus ``config.json`` (this copies tokens per split, as delphi does)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from sae_core.cache.reader import LatentCache


def to_delphi(cache: LatentCache, out: str | Path, n_splits: int = 5) -> Path:
    out = Path(out) / cache.coder.split("/")[0]
    out.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, cache.n_latents, n_splits + 1).astype(int)
    tokens = torch.from_numpy(np.asarray(cache.tokens, dtype=np.int64))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        locs, acts = [], []
        for i in range(a, b):
            tok, val = cache.latent(i)
            row, pos = np.divmod(tok, cache.ctx)
            locs.append(np.stack([row, pos, np.full_like(row, i)], 1))
            acts.append(val)
        loc = np.concatenate(locs) if locs else np.zeros((0, 3), np.int64)
        act = np.concatenate(acts) if acts else np.zeros(0, np.float32)
        save_file(
            {
                "locations": torch.from_numpy(loc.astype(np.int64)),
                "activations": torch.from_numpy(act),
                "tokens": tokens,
            },
            str(out / f"{a}_{b - 1}.safetensors"),
        )
    (out / "config.json").write_text(
        json.dumps(
            {"ctx_len": cache.ctx, "n_splits": n_splits, "source": "sae-core", "coder": cache.coder}
        )
    )
    return out
