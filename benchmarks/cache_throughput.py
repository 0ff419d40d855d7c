"""Latent-cache throughput: (a) bare forward to the hookpoint, (b) sae-core's streaming sparse cache,
(c) a dense-buffer baseline written the way delphi's LatentCache does it (dense [tokens x latents]
scatter, nonzero(|z| > 1e-5), int64 locations kept per batch, concatenated and split into latent
ranges with a copy of the tokens per split). Same model, SAE and token rows for all three.

    uv run python benchmarks/cache_throughput.py [--model smollm2] [--layer 6] [--latents 4608] [--k 32]
        [--tokens 16384] [--ctx 256] [--batch-rows 8] [--sae DIR] [--ram-budget-mb 256]

The SAE is the cached demo SAE when present (--sae or ~/.cache/sae-core/demo-...), else a random TopK
SAE of the same shape (printed as such: throughput does not depend on the weights' quality).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from safetensors.torch import save_file


class PeakRSS:
    """Samples this process's RSS every 5 ms in a thread."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def batches(rowset, batch_rows):
    for r0 in range(0, rowset.n_rows, batch_rows):
        ids = torch.from_numpy(rowset.tokens[r0 : r0 + batch_rows].astype(np.int64))
        lengths = torch.from_numpy(rowset.rows[r0 : r0 + batch_rows, 2])
        attn = (torch.arange(rowset.ctx)[None] < lengths[:, None]).long()
        yield r0, ids, attn, rowset.recorded[r0 : r0 + batch_rows]


def bare(model, site, rowset, batch_rows):
    from lm_kit.hooks import capture, run

    t = time.perf_counter()
    for _, ids, attn, _ in batches(rowset, batch_rows):
        with capture(model, site, to=None, stop_at="auto") as acts:
            run(model, input_ids=ids, attention_mask=attn)
        _ = acts[site]
    return time.perf_counter() - t


def dense_baseline(model, site, sae, rowset, batch_rows, out: Path, n_splits=5):
    """delphi-style: dense latents per batch, nonzero, int64 locations, per-batch copies, split save."""
    from lm_kit.hooks import capture, run

    t = time.perf_counter()
    all_locs, all_acts = [], []
    for r0, ids, attn, rec in batches(rowset, batch_rows):
        with capture(model, site, to=None, stop_at="auto") as acts:
            run(model, input_ids=ids, attention_mask=attn)
        rec_t = torch.from_numpy(rec)
        where = (
            rec_t.nonzero()
        )  # same recorded tokens as the cache (delphi itself keeps all of them)
        x = acts[site][rec_t].float()
        with torch.no_grad():
            idx, val = sae.encode_topk(x)
            dense = torch.zeros(idx.shape[0], sae.n_latents).scatter_(
                1, idx, val
            )  # dense [tokens, n]
            nz2 = torch.nonzero(dense.abs() > 1e-5)  # int64 [nnz, 2] (token, latent)
            vals = dense[nz2[:, 0], nz2[:, 1]]
            nz = torch.cat([where[nz2[:, 0]], nz2[:, 1:]], 1)  # (batch, seq, latent) int64
            nz[:, 0] += r0
        all_locs.append(nz.clone())
        all_acts.append(vals.clone())
    locs = torch.cat(all_locs)
    vals = torch.cat(all_acts)
    tokens = torch.from_numpy(rowset.tokens.astype(np.int64))
    bounds = np.linspace(0, sae.n_latents, n_splits + 1).astype(int)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        m = (locs[:, 2] >= a) & (locs[:, 2] < b)
        sl = locs[m].clone()
        sl[:, 2] -= a
        save_file(
            {
                "locations": sl.contiguous(),
                "activations": vals[m].half().contiguous(),
                "tokens": tokens,
            },
            str(out / f"{a}_{b - 1}.safetensors"),
        )
    elapsed = time.perf_counter() - t
    size = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    return elapsed, int(locs.shape[0]), size


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--latents", type=int, default=4608)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch-rows", type=int, default=8)
    ap.add_argument("--sae", default=None)
    ap.add_argument("--ram-budget-mb", type=float, default=256.0)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import sae_core
    from lm_kit import load_model
    from sae_core import SAEConfig, SparseCoder
    from sae_core.cache import CacheConfig, LatentCache, cache_latents
    from sae_core.cache.writer import _make_rows
    from sae_core.data import demo_texts
    from sae_core.demo import default_demo_dir

    site = f"resid_post.{args.layer}"
    model, tok = load_model(args.model)
    sae_dir = (
        Path(args.sae) if args.sae else default_demo_dir(args.layer, args.latents, args.k) / site
    )
    if (sae_dir / "sae.safetensors").is_file():
        sae = sae_core.load(sae_dir)
        sae_label = f"trained demo SAE {sae_dir}"
    else:
        d = model.config.hidden_size
        sae = SparseCoder(
            SAEConfig(d_in=d, n_latents=args.latents, activation="topk", k=args.k, site=site)
        )
        torch.manual_seed(0)
        with torch.no_grad():
            sae.W_dec.normal_().div_(sae.W_dec.norm(dim=1, keepdim=True))
            sae.W_enc.copy_(sae.W_dec.T)
        sae.requires_grad_(False)
        sae_label = "random TopK SAE (no trained demo SAE cached; speed does not depend on weights)"
    cfg = CacheConfig(
        ctx=args.ctx,
        batch_rows=args.batch_rows,
        max_tokens=args.tokens,
        top_n=256,
        reservoir=256,
        ram_budget_mb=args.ram_budget_mb,
        progress=False,
    )
    rowset = _make_rows(demo_texts(), cfg, tok, model)
    n_real = int(rowset.recorded.sum())
    print(
        f"model {args.model}, site {site}, SAE: {sae_label}, n_latents {sae.n_latents}, k {sae.cfg.k}"
    )
    print(
        f"rows {rowset.n_rows} x ctx {rowset.ctx}; recorded tokens {n_real}; torch threads {torch.get_num_threads()}"
    )

    from lm_kit.hookpoints import resolve

    # warm-up: allocations, kernels, and lm-kit's one-off full-model width probe (cached per model),
    # which pages the memory-mapped weights of ALL layers into RSS; without it that ~400 MB of
    # file-backed model weights would be counted as cache memory
    resolve(model, site, probe=True)
    bare(model, site, rowset, args.batch_rows)
    tmp = Path(tempfile.mkdtemp(prefix="cache_bench_"))
    try:
        t_bare = bare(model, site, rowset, args.batch_rows)
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            out = cache_latents(model, {site: sae}, rowset, tmp / "cache", cfg)
            t_cache = time.perf_counter() - t0
        (tmp / "dense").mkdir()
        t_dense, nnz_dense, dense_bytes = dense_baseline(
            model, site, sae, rowset, args.batch_rows, tmp / "dense"
        )
        c = LatentCache.open(out)
        nnz = int(c.meta["nnz"])
        shard_bytes = sum(p.stat().st_size for p in (out / c.coder).rglob("shard_*/*.npy"))
        token_bytes = sum((out / f).stat().st_size for f in ("tokens.npy", "rows.npy", "mask.npy"))
        heap_bytes = sum(
            (out / c.coder / f).stat().st_size for f in ("topn.npz", "reservoir.npz", "stats.npz")
        )
        assert nnz == nnz_dense, (nnz, nnz_dense)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tps = {k: n_real / v for k, v in {"bare": t_bare, "cache": t_cache, "dense": t_dense}.items()}
    print(f"{'variant':<28}{'seconds':>10}{'tokens/s':>12}")
    for name, t in (
        ("(a) bare forward to site", t_bare),
        ("(b) sae-core cache", t_cache),
        ("(c) dense-buffer baseline", t_dense),
    ):
        print(f"{name:<28}{t:>10.2f}{n_real / t:>12.0f}")
    print(
        f"nonzeros {nnz}; shard bytes {shard_bytes}; token/row/mask bytes {token_bytes}; "
        f"heaps+stats bytes {heap_bytes}; dense-baseline bytes {dense_bytes} "
        f"({dense_bytes / nnz:.2f} B/nnz)"
    )
    print(
        f"peak RSS above model+SAE during caching: {(rss.peak - rss.base) / 2**20:.0f} MB "
        f"(process peak {rss.peak / 2**20:.0f} MB)"
    )
    print(f"tokens/s bare: {tps['bare']:.0f}")
    print(f"tokens/s cache: {tps['cache']:.0f}")
    print(f"tokens/s dense-baseline: {tps['dense']:.0f}")
    print(f"ratio cache/bare: {tps['cache'] / tps['bare']:.3f}")
    print(f"ratio cache/dense-baseline: {tps['cache'] / tps['dense']:.3f}")
    print(f"bytes per nonzero: {(shard_bytes + token_bytes) / nnz:.3f}")
    print(f"peak RSS MB: {(rss.peak - rss.base) / 2**20:.0f} budget MB: {args.ram_budget_mb:.0f}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
