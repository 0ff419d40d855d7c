"""Latent-cache throughput, side by side on the same model, SAE and token rows:

(a) bare forward to the hookpoint (lm-kit early stop), plus T_enc = encoding the pre-captured
    activations alone; the physical limit of any cache is T_bare + T_enc;
(b) sae-core's streaming sparse cache (sparse encode, online top-N/reservoirs/statistics, spill
    runs, CSR shards);
(c) a dense-buffer baseline that re-implements delphi's ``LatentCache`` (delphi/latents/cache.py):
    per batch the dense [batch, seq, latents] scatter of the top-k codes (sparsify's dense encode),
    ``nonzero(|z| > 1e-5)`` -> int64 (batch, seq, latent) triples plus a second ``|z| > 1e-5`` mask
    for the values, firing counts ``(z > 0).sum((0, 1))``, ``.cpu()`` copies of locations, values and
    the token batch kept in RAM to the end; then ``torch.cat``, 5 latent-range splits each with its
    own copy of the tokens, uint16/uint32 downcast, safetensors save. It uses the same early-stopped
    forward as (a)/(b), so (b)/(c) isolates the caching design. delphi itself runs the *whole*
    model (``self.model(batch)``); with ``--full-forward`` the full forward is timed once and the
    derived ratio against (c) with that forward is printed too.

    uv run python benchmarks/cache_throughput.py [--latents 4608 36864 131072@2] [--k 32]
        [--tokens 16384] [--ctx 256] [--batch-rows 8] [--rows concat|doc] [--ram-budget-mb 2048]
        [--full-forward] [--sae DIR] [--repeats 3]

``--latents`` takes one or more widths, each optionally ``N@LAYER`` (default layer ``--layer``).
The SAE is the cached trained demo SAE when one of that shape exists (or ``--sae``), else a random
TopK SAE of the same shape, printed as such (throughput does not depend on the weights' quality).
Rows default to ``concat`` (delphi's EOS-joined stream, no padding), so every variant processes
the same real tokens; tokens/s count recorded tokens (BOS and EOS separators are not recorded).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from safetensors.numpy import save_file


class PeakRSS:
    """Peak RSS of this process over the block.

    On Linux the kernel's high-water mark (VmHWM) is reset on entry (``/proc/self/clear_refs``)
    and read on exit: exact, and no sampling thread competes with the timed code for the GIL.
    Elsewhere a thread samples the RSS every 5 ms.
    """

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    @staticmethod
    def _hwm() -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def __enter__(self) -> PeakRSS:
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
            self._kernel = self._hwm() is not None
        except OSError:
            self._kernel = False
        if not self._kernel:
            self._t = threading.Thread(target=self._run, daemon=True)
            self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        if self._kernel:
            self.peak = max(self.peak, self._hwm() or 0)
            return
        self._stop.set()
        if self._t is not None:
            self._t.join()


class Timer:
    """Wall and CPU (user+sys of this process, all threads) seconds."""

    def __enter__(self) -> Timer:
        self.w0, self.c0 = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w0, _cpu() - self.c0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def batches(rowset, batch_rows, limit: int | None = None):
    end = rowset.n_rows if limit is None else min(rowset.n_rows, limit * batch_rows)
    for r0 in range(0, end, batch_rows):
        ids = torch.from_numpy(rowset.tokens[r0 : r0 + batch_rows].astype(np.int64))
        lengths = torch.from_numpy(rowset.rows[r0 : r0 + batch_rows, 2])
        attn = (torch.arange(rowset.ctx)[None] < lengths[:, None]).long()
        yield r0, ids, attn, rowset.recorded[r0 : r0 + batch_rows]


def bare(model, site, rowset, batch_rows, keep: list | None = None, limit=None) -> Timer:
    """Forward to ``site`` (early stop); ``keep`` collects the site activations for T_enc."""
    from lm_kit.hooks import capture, run

    with Timer() as t, torch.no_grad():
        for _, ids, attn, _ in batches(rowset, batch_rows, limit):
            with capture(model, site, to=None, stop_at="auto") as acts:
                run(model, input_ids=ids, attention_mask=attn)
            if keep is not None:
                keep.append(acts[site])
    return t


def full_forward(model, rowset, batch_rows, limit=None) -> Timer:
    """The whole model, logits included, as delphi's ``LatentCache.run`` calls ``model(batch)``."""
    with Timer() as t, torch.no_grad():
        for _, ids, attn, _ in batches(rowset, batch_rows, limit):
            model(input_ids=ids, attention_mask=attn)
    return t


def encode_only(sae, acts: list, rowset, batch_rows, chunk_rows: int) -> Timer:
    """T_enc: the cache's sparse encode of the pre-captured recorded activations, nothing else."""
    recs = [torch.from_numpy(rec) for _, _, _, rec in batches(rowset, batch_rows)]
    xs = [a[r].float() for a, r in zip(acts, recs, strict=True)]
    with Timer() as t, torch.no_grad():
        for x in xs:
            sae.encode_sparse(x, chunk_rows=chunk_rows)
    return t


def delphi_baseline(model, site, sae, rowset, batch_rows, out: Path, n_splits: int = 5):
    """delphi's LatentCache.run + save_splits, re-implemented on the same rows and SAE."""
    from lm_kit.hooks import capture, run

    locs_b, acts_b, toks_b = [], [], []
    firing = torch.zeros(sae.n_latents, dtype=torch.long)
    with Timer() as t, torch.no_grad():
        for bnum, (_, ids, attn, _) in enumerate(batches(rowset, batch_rows)):
            with capture(model, site, to=None, stop_at="auto") as acts:
                run(model, input_ids=ids, attention_mask=attn)
            x = acts[site].float()
            # sparsify's dense encode (delphi's sparse_coders/custom: sae_dense_latents)
            idx, val = sae.encode_topk(x.reshape(-1, x.shape[-1]))
            z = torch.zeros(idx.shape[0], sae.n_latents, dtype=x.dtype)
            z = z.scatter_(-1, idx, val).reshape(*x.shape[:-1], -1)  # dense [B, T, n]
            # Cache.add -> get_nonzeros
            loc = torch.nonzero(z.abs() > 1e-5)  # int64 [nnz, 3] (batch, seq, latent)
            a = z[z.abs() > 1e-5]
            loc, a, tk = loc.cpu(), a.cpu(), ids.cpu()
            loc[:, 0] += bnum * batch_rows
            locs_b.append(loc)
            acts_b.append(a)
            toks_b.append(tk)
            firing += (z > 0).sum((0, 1)).cpu()
            del z
        # Cache.save: concatenate; save_splits
        locs, vals, tokens = torch.cat(locs_b), torch.cat(acts_b), torch.cat(toks_b)
        del locs_b, acts_b, toks_b
        tok_np = tokens.numpy()
        bounds = torch.linspace(0, sae.n_latents, steps=n_splits + 1).long()
        lat = locs[:, 2]
        for start, end in zip(bounds[:-1], bounds[1:] - 1, strict=True):
            mask = (lat >= start) & (lat <= end)
            m_act = vals[mask].half().numpy()
            m_loc = locs[mask].numpy()
            m_loc[:, 2] = m_loc[:, 2] - start.item()
            if m_loc[:, 2].max(initial=0) < 2**16 and m_loc[:, 0].max(initial=0) < 2**16:
                m_loc = m_loc.astype(np.uint16)
            else:
                m_loc = m_loc.astype(np.uint32)
            save_file(
                {"locations": m_loc, "activations": m_act, "tokens": tok_np},
                str(out / f"{int(start)}_{int(end)}.safetensors"),
            )
    size = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    # nonzeros at the positions the cache records (delphi also keeps BOS/EOS/pad positions)
    rec = torch.from_numpy(rowset.recorded)
    nnz_rec = int(rec[locs[:, 0], locs[:, 1]].sum())
    return t, int(locs.shape[0]), nnz_rec, size


def make_sae(args, model, n: int, layer: int):
    import sae_core
    from sae_core import SAEConfig, SparseCoder
    from sae_core.demo import default_demo_dir

    site = f"resid_post.{layer}"
    sae_dir = Path(args.sae) if args.sae else default_demo_dir(layer, n, args.k) / site
    if (sae_dir / "sae.safetensors").is_file():
        sae = sae_core.load(sae_dir)
        if sae.n_latents == n:
            return sae, f"trained demo SAE {sae_dir}"
    d = model.config.hidden_size
    sae = SparseCoder(SAEConfig(d_in=d, n_latents=n, activation="topk", k=args.k, site=site))
    torch.manual_seed(0)
    with torch.no_grad():
        sae.W_dec.normal_().div_(sae.W_dec.norm(dim=1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.T)
    sae.requires_grad_(False)
    return sae, "random TopK SAE (speed does not depend on the weights)"


def run_width(args, model, rowset, n: int, layer: int, t_full: Timer | None) -> None:
    from lm_kit.hookpoints import resolve
    from sae_core.cache import CacheConfig, LatentCache, cache_latents

    site = f"resid_post.{layer}"
    sae, label = make_sae(args, model, n, layer)
    cfg = CacheConfig(
        ctx=args.ctx,
        batch_rows=args.batch_rows,
        rows=args.rows,
        top_n=256,
        reservoir=256,
        ram_budget_mb=args.ram_budget_mb,
        progress=False,
    )
    n_rec = int(rowset.recorded.sum())
    tag = f"[{n} latents, {site}]"
    print(f"\n=== {tag} SAE: {label}, k {sae.cfg.k}; load average {os.getloadavg()[0]:.1f}")
    # warm-up: kernels, allocations, and lm-kit's one-off full-model width probe (it pages all
    # memory-mapped layers into RSS; it must not be counted as cache memory)
    resolve(model, site, probe=True)
    bare(model, site, rowset, args.batch_rows, limit=2)
    reps: dict[str, list[Timer]] = {"bare": [], "cache": [], "enc": [], "dense": []}
    rss = None
    tmp = Path(tempfile.mkdtemp(prefix="cache_bench_"))
    try:
        # the arms alternate, `--repeats` times; each is reported by its median (noisy machines)
        for _rep in range(args.repeats):
            acts: list = []
            reps["bare"].append(bare(model, site, rowset, args.batch_rows, keep=acts))
            shutil.rmtree(tmp / "cache", ignore_errors=True)
            with PeakRSS() as rss_rep, Timer() as t_cache:
                out = cache_latents(model, {site: sae}, rowset, tmp / "cache", cfg)
            reps["cache"].append(t_cache)
            rss = rss if rss is not None else rss_rep
            c = LatentCache.open(out)
            mem = c.manifest["memory"]
            reps["enc"].append(
                encode_only(sae, acts, rowset, args.batch_rows, mem_chunk_rows(mem, n))
            )
            del acts
            shutil.rmtree(tmp / "dense", ignore_errors=True)
            (tmp / "dense").mkdir()
            t_dense, nnz_all, nnz_dense, dense_bytes = delphi_baseline(
                model, site, sae, rowset, args.batch_rows, tmp / "dense"
            )
            reps["dense"].append(t_dense)
        nnz = int(c.meta["nnz"])
        shard_bytes = sum(p.stat().st_size for p in (out / c.coder).rglob("shard_*/*.npy"))
        token_bytes = sum((out / f).stat().st_size for f in ("tokens.npy", "rows.npy", "mask.npy"))
        heap_file_bytes = sum(
            (out / c.coder / f).stat().st_size for f in ("topn.npz", "reservoir.npz", "stats.npz")
        )
        assert nnz == nnz_dense, (nnz, nnz_dense)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t_bare, t_cache, t_enc, t_dense = (_median(reps[k]) for k in ("bare", "cache", "enc", "dense"))
    if args.repeats > 1:
        print(
            f"{args.repeats} alternating repeats, medians below; wall s per repeat: "
            + "; ".join(f"{k} " + " ".join(f"{t.wall:.2f}" for t in v) for k, v in reps.items())
        )
    mb = 2**20
    print(
        f"memory plan (reported up front): tables n*(8N+12R) {mem['heap_bytes'] / mb:.0f} MB, "
        f"candidate buffers {mem['candidate_bytes'] / mb:.0f} MB, encode chunk "
        f"{mem['encode_chunk_bytes'] / mb:.0f} MB, stats {mem['stats_bytes'] / mb:.0f} MB, "
        f"spill {mem['spill_bytes'] / mb:.0f} MB; budget {mem['budget_bytes'] / mb:.0f} MB"
    )
    phys = t_bare.wall + t_enc.wall
    rows = [
        ("(a) bare forward to site", t_bare),
        ("    encode alone (T_enc)", t_enc),
        ("(b) sae-core cache", t_cache),
        ("(c) delphi-style dense", t_dense),
    ]
    print(f"{'variant':<30}{'wall s':>9}{'cpu s':>9}{'tokens/s':>10}")
    for name, t in rows:
        print(f"{name:<30}{t.wall:>9.2f}{t.cpu:>9.2f}{n_rec / t.wall:>10.0f}")
    print(
        f"recorded tokens {n_rec}; nonzeros {nnz} (dense baseline keeps {nnz_all} incl. BOS/EOS "
        f"positions); shard bytes {shard_bytes}; token/row/mask bytes {token_bytes}; top-N/"
        f"reservoir/stats files {heap_file_bytes}; delphi-style files {dense_bytes} "
        f"({dense_bytes / nnz_all:.2f} B/nnz)"
    )
    print(
        f"peak RSS above model+SAE during caching: {(rss.peak - rss.base) / mb:.0f} MB "
        f"(process peak {rss.peak / mb:.0f} MB)"
    )
    tps = {k: n_rec / t.wall for k, t in (("bare", t_bare), ("cache", t_cache), ("dense", t_dense))}
    print(f"tokens/s bare {tag}: {tps['bare']:.0f}")
    print(f"tokens/s cache {tag}: {tps['cache']:.0f}")
    print(f"tokens/s dense-baseline {tag}: {tps['dense']:.0f}")
    print(f"ratio cache/bare {tag}: {tps['cache'] / tps['bare']:.3f}")
    print(f"ratio cache/dense-baseline {tag}: {tps['cache'] / tps['dense']:.3f}")
    print(f"ratio cache/physical-limit {tag}: {t_cache.wall / phys:.3f}")
    # CPU seconds (user+sys, all threads) are less affected by other jobs on a shared machine
    print(f"cpu ratio cache/bare {tag}: {t_bare.cpu / t_cache.cpu:.3f}")
    print(f"cpu ratio cache/dense-baseline {tag}: {t_dense.cpu / t_cache.cpu:.3f}")
    print(f"cpu ratio cache/physical-limit {tag}: {t_cache.cpu / (t_bare.cpu + t_enc.cpu):.3f}")
    if t_full is not None:
        t_delphi = t_dense.wall - t_bare.wall + t_full.wall
        print(f"ratio cache/delphi-full-forward (derived) {tag}: {t_delphi / t_cache.wall:.3f}")
    print(f"bytes per nonzero {tag}: {(shard_bytes + token_bytes) / nnz:.3f}")
    print(
        f"peak RSS MB {tag}: {(rss.peak - rss.base) / mb:.0f} budget MB: {args.ram_budget_mb:.0f}"
    )


def _median(ts: list[Timer]) -> Timer:
    """A Timer with the median wall and the median CPU time of the repeats."""
    out = Timer()
    out.wall = float(np.median([t.wall for t in ts]))
    out.cpu = float(np.median([t.cpu for t in ts]))
    return out


def mem_chunk_rows(mem: dict, n: int) -> int:
    """The encode chunk the cache used (from its memory plan)."""
    return max(1, int(mem["encode_chunk_bytes"]) // (4 * n))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--latents", nargs="+", default=["4608"], help="widths, each N or N@LAYER")
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch-rows", type=int, default=8)
    ap.add_argument("--rows", choices=["concat", "doc"], default="concat")
    ap.add_argument("--sae", default=None)
    ap.add_argument("--ram-budget-mb", type=float, default=2048.0)
    ap.add_argument("--full-forward", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--repeats", type=int, default=1, help="alternating repeats of every arm (medians)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from lm_kit import load_model
    from sae_core.cache import CacheConfig
    from sae_core.cache.writer import _make_rows
    from sae_core.data import demo_texts

    widths = []
    for w in args.latents:
        n, _, layer = w.partition("@")
        widths.append((int(n), int(layer) if layer else args.layer))
    model, tok = load_model(args.model)
    rcfg = CacheConfig(ctx=args.ctx, rows=args.rows, max_tokens=args.tokens, progress=False)
    rowset = _make_rows(demo_texts(), rcfg, tok, model)
    print(
        f"model {args.model}; rows {rowset.n_rows} x ctx {rowset.ctx} ({args.rows}); recorded "
        f"tokens {int(rowset.recorded.sum())}; batch {args.batch_rows} rows; torch threads "
        f"{torch.get_num_threads()}; cpus {os.cpu_count()}; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    t_full = None
    if args.full_forward:
        full_forward(model, rowset, args.batch_rows, limit=1)  # warm-up
        t_full = full_forward(model, rowset, args.batch_rows)
        print(f"full forward (delphi runs the whole model): {t_full.wall:.2f} s wall")
    for n, layer in widths:
        run_width(args, model, rowset, n, layer, t_full)
    print(f"\nload average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
