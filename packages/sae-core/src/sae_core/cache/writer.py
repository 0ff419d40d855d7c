"""Streaming sparse latent cache: one forward per batch for all sites, sparse encode, bounded RAM,
resumable, finalised into CSR shards by latent range (format: see the package README)."""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from sae_core.cache.reader import read_json_object
from sae_core.cache.rows import RowSet, build_rows, tokenize_documents
from sae_core.cache.sketch import MinHashSketch
from sae_core.cache.stats import LatentStats
from sae_core.cache.topn import SegmentedTopN, window_hash
from sae_core.codes import serial_ops
from sae_core.errors import CacheError
from sae_core.formats.common import write_json_atomic

VERSION = 1
FP16_MAX = 65504.0


@dataclass
class CacheConfig:
    """Settings of :func:`cache_latents` (all but ``progress``/``ram_budget_mb``/checkpointing are hashed:
    resuming with other values is refused)."""

    ctx: int = 256
    batch_rows: int = 16
    rows: Literal["doc", "concat"] = "doc"
    max_tokens: int | None = None
    top_n: int = 256
    reservoir: int = 256
    window: int = 32
    seed: int = 0
    exclude_tokens: list[int] = field(default_factory=list)
    latents: dict[str, list[int]] | None = None  # coder key -> subset of latents to store
    # co-occurrence MinHash sketch: bins per latent (0 = off; 128 gives Jaccard +-0.04 at J = 0.3)
    cooccurrence_bins: int = 0
    shard_max_mb: float = 512.0
    # Bounds everything the cache holds on top of the model and coders: top-N/reservoir tables,
    # candidate buffers, statistics, one encode chunk and the spill buffers (the rest).
    ram_budget_mb: float = 2048.0
    spill_mb: float | None = None  # spill-buffer size; None: what the budget leaves (tests set it)
    checkpoint_every_s: float = 60.0
    checkpoint_every_batches: int | None = None
    progress: bool = True

    def validate(self) -> None:
        """Refuse out-of-range settings up front, naming the field (before any file is written)."""
        for name in ("batch_rows", "top_n", "reservoir", "window"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise CacheError(f"CacheConfig.{name} must be a positive integer, got {v!r}")
        b = self.cooccurrence_bins
        if isinstance(b, bool) or not isinstance(b, int) or b < 0 or (b and b & (b - 1)):
            raise CacheError(
                f"CacheConfig.cooccurrence_bins must be 0 (off) or a power of two such as 128, "
                f"got {b!r}"
            )
        for name in ("shard_max_mb", "ram_budget_mb"):
            if not getattr(self, name) > 0:
                raise CacheError(
                    f"CacheConfig.{name} must be positive, got {getattr(self, name)!r}"
                )
        if not self.checkpoint_every_s >= 0:
            raise CacheError(
                f"CacheConfig.checkpoint_every_s must be >= 0, got {self.checkpoint_every_s!r}"
            )
        if self.spill_mb is not None and not self.spill_mb > 0:
            raise CacheError(
                f"CacheConfig.spill_mb must be positive or None, got {self.spill_mb!r}"
            )
        if self.checkpoint_every_batches is not None and self.checkpoint_every_batches < 0:
            raise CacheError(
                "CacheConfig.checkpoint_every_batches must be positive or None, got "
                f"{self.checkpoint_every_batches!r}"
            )
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise CacheError(
                f"CacheConfig.max_tokens must be positive or None (no cap), got {self.max_tokens!r}"
            )

    def hashed(self) -> dict[str, Any]:
        d = asdict(self)
        for k in (
            "progress",
            "ram_budget_mb",
            "spill_mb",
            "checkpoint_every_s",
            "checkpoint_every_batches",
            "shard_max_mb",
        ):
            d.pop(k)
        if not d["cooccurrence_bins"]:  # off: hashes like caches made before the option existed
            d.pop("cooccurrence_bins")
        return d


@dataclass
class _CoderState:
    key: str
    site: str
    coder: Any
    n: int
    stats: LatentStats
    topn: SegmentedTopN
    res: SegmentedTopN
    subset: np.ndarray | None
    sketch: MinHashSketch | None = None
    buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    buf_entries: int = 0
    runs: list[str] = field(default_factory=list)


def _coder_items(coders: Any) -> list[tuple[str, str, Any]]:
    """Normalise {site: coder} / {site: {name: coder}} / [(site, name, coder)] to (site, name, coder)."""
    out = []
    if isinstance(coders, Mapping):
        for site, c in coders.items():
            if isinstance(c, Mapping):
                out += [(site, name, cc) for name, cc in c.items()]
            else:
                out.append((site, "sae", c))
    elif hasattr(coders, "encode_sparse"):
        raise CacheError(
            "coders must map sites to coders, got a single coder; pass {site: coder}, "
            "e.g. {sae.cfg.site: sae}"
        )
    else:
        try:
            out = [tuple(t) for t in coders]
        except TypeError:
            raise CacheError(
                f"coders must be {{site: coder}}, {{site: {{name: coder}}}} or [(site, name, coder)], "
                f"got {type(coders).__name__}"
            ) from None
        if any(len(t) != 3 for t in out):
            raise CacheError("a list of coders must hold (site, name, coder) triples")
    if not out:
        raise CacheError("no coders given; pass {site: coder}")
    for site, name, c in out:
        if not (hasattr(c, "encode_sparse") and hasattr(c, "n_latents")):
            raise CacheError(
                f"coder {name!r} at site {site!r} is a {type(c).__name__}, not a coder; load it "
                "first (sae_core.load(path)) or pass a NeuronCoder"
            )
    return out


def _tensor_hash(coder: Any) -> str:
    h = hashlib.sha256()
    for name, t in sorted(coder.state_dict().items()):
        h.update(name.encode())
        flat = t.detach().reshape(-1)[: 1 << 20]  # slice first: never copy a whole weight
        h.update(flat.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _model_hash(model: Any) -> str:
    cfg = getattr(model, "config", None)
    text = cfg.to_json_string() if cfg is not None else type(model).__name__
    h = hashlib.sha256(text.encode())
    for _, p in list(model.named_parameters())[:3]:
        # slice before copying: the embedding alone is ~110 MB on SmolLM2
        h.update(p.detach().reshape(-1)[: 1 << 14].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _tok_bytes(n_tokens: int) -> int:
    return 3 if n_tokens < 2**24 else 4 if n_tokens < 2**32 else 8


def _save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cache_latents(
    model: Any,
    coders: Any,
    docs: Iterable[Sequence[int]] | Iterable[str] | RowSet,
    out: str | Path,
    cfg: CacheConfig | None = None,
    *,
    tokenizer: Any = None,
    on_batch: Callable[[int], None] | None = None,
) -> Path:
    """Cache the sparse latents of ``coders`` ({site: coder} or {site: {name: coder}}) over ``docs``.

    ``docs``: token-id lists (one per document, no special tokens), strings (with ``tokenizer``), or a
    prepared :class:`RowSet`. Writes ``out`` (see README "Latent cache"); resumes an interrupted run in
    ``out``; returns ``out``. ``on_batch(i)`` is called after batch ``i`` is processed (tests use it to
    interrupt a run).
    """
    from lm_kit.hooks import capture, run

    cfg = cfg or CacheConfig()
    cfg.validate()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CacheError(f"{out} is a file; pass a new (or the same cache's) output folder")
    items = _coder_items(coders)
    if cfg.latents:
        keys = [f"{s}/{n}" for s, n, _ in items]
        unknown = sorted(set(cfg.latents) - set(keys))
        if unknown:
            raise CacheError(
                f"CacheConfig.latents names coders {unknown} that are not cached; use keys of the "
                f"form '<site>/<name>': {keys}"
            )
    rowset = _make_rows(docs, cfg, tokenizer, model)
    ctx = rowset.ctx
    if cfg.window <= 0 or cfg.window > ctx:
        raise CacheError(f"window must be in 1..ctx={ctx}, got {cfg.window}")
    sites = sorted({s for s, _, _ in items})
    _check_sites(model, items)
    n_tokens = rowset.n_rows * ctx
    tok_bytes = _tok_bytes(n_tokens)
    key_dtype = np.uint32 if n_tokens < 2**32 else np.uint64
    coder_meta = {
        f"{s}/{n}": {
            "site": s,
            "name": n,
            "n_latents": int(c.n_latents),
            "hash": _tensor_hash(c),
            "signed": bool(getattr(c, "keep_negative", False)),
            "config": _coder_config(c),
        }
        for s, n, c in items
    }
    manifest = {
        "version": VERSION,
        "complete": False,
        "ctx": ctx,
        "n_rows": rowset.n_rows,
        "n_tokens": n_tokens,
        "n_real_tokens": int(rowset.rows[:, 2].sum()),
        "n_recorded_tokens": int(rowset.recorded.sum()),
        "token_dtype": str(rowset.tokens.dtype),
        "tok_bytes": tok_bytes,
        "window": cfg.window,
        "bos_in_row": bool(_bos_id(model, tokenizer) is not None),
        "data_digest": rowset.digest(),
        "model_hash": _model_hash(model),
        "model_id": getattr(getattr(model, "config", None), "_name_or_path", None),
        "config": cfg.hashed(),
        "coders": coder_meta,
    }
    if (out / "manifest.json").is_file():
        old = read_json_object(out / "manifest.json", "delete the folder and rerun")
        _check_same(old, manifest, out)
        if old.get("complete"):
            return out
    states: list[_CoderState] = []
    for s, n, c in items:
        key = f"{s}/{n}"
        subset = None
        if cfg.latents and key in cfg.latents:
            subset = np.zeros(c.n_latents, bool)
            subset[_latent_subset(cfg.latents[key], key, int(c.n_latents))] = True
        states.append(
            _CoderState(
                key,
                s,
                c,
                int(c.n_latents),
                LatentStats.zeros(c.n_latents),
                # top-N: order = -window max (f32; val = -order), key = peak token: 8 B/slot
                SegmentedTopN(c.n_latents, cfg.top_n, np.float32, key_dtype, store_val=False),
                # reservoir: order = high 32 bits of the window hash, key, window max: 12 B/slot
                SegmentedTopN(c.n_latents, cfg.reservoir, np.uint32, key_dtype),
                subset,
                MinHashSketch(c.n_latents, cfg.cooccurrence_bins, cfg.seed)
                if cfg.cooccurrence_bins
                else None,
            )
        )
    plan = memory_plan(states, cfg)  # refuses a budget that cannot hold, before writing anything
    manifest["memory"] = {k: v for k, v in plan.items() if k != "chunk_rows"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    _save_npy_atomic(out / "tokens.npy", rowset.tokens)
    _save_npy_atomic(out / "rows.npy", rowset.rows)
    _save_npy_atomic(out / "mask.npy", np.packbits(rowset.recorded, axis=-1))
    write_json_atomic(out / "manifest.json", manifest)

    cursor, flush_id, skipped = _restore(out, states)

    device = next(model.parameters()).device
    n_batches = -(-rowset.n_rows // cfg.batch_rows)
    # a spilled entry is lat u32 + tok u32/u64 + val f32; sorting at a flush needs about as much again
    entry_bytes = 8 + np.dtype(key_dtype).itemsize
    budget_entries = int(plan["spill_bytes"] / 2 / entry_bytes)
    chunk_rows = plan["chunk_rows"]
    last_flush = time.monotonic()
    state_seconds = 0.0
    batches_since = 0
    cpr = -(-ctx // cfg.window)
    bar = tqdm(
        total=n_batches,
        initial=cursor,
        desc="caching latents",
        unit="batch",
        disable=not cfg.progress,
        postfix={"heaps MB": f"{plan['heap_bytes'] / 2**20:.0f}"},
    )
    arange_ctx = torch.arange(ctx, device=device)
    for b in range(cursor, n_batches):
        r0, r1 = b * cfg.batch_rows, min((b + 1) * cfg.batch_rows, rowset.n_rows)
        rec = rowset.recorded[r0:r1]
        if not rec.any():
            skipped += 1
        else:
            ids = torch.from_numpy(rowset.tokens[r0:r1].astype(np.int64)).to(device)
            lengths = torch.from_numpy(rowset.rows[r0:r1, 2]).to(device)
            attn = (arange_ctx[None, :] < lengths[:, None]).long()
            with capture(model, sites, to=None, stop_at="auto") as acts:
                run(model, input_ids=ids, attention_mask=attn)
            rec_t = torch.from_numpy(rec).to(device)
            flat = np.flatnonzero(rec.ravel()).astype(np.int64) + r0 * ctx
            results = []
            for st in states:
                with serial_ops():  # small ops: see serial_ops
                    x = acts[st.site][rec_t].float()
                    # a row sum is non-finite when an entry is (rarely, on overflow: check exactly)
                    finite = bool(torch.isfinite(x.sum(dim=-1)).all())
                if not finite:
                    bad = ~torch.isfinite(x).all(dim=-1)
                    if bad.any():
                        g = int(flat[int(bad.nonzero()[0, 0])])
                        raise CacheError(
                            f"non-finite activations at site {st.site}, row {g // ctx}, position "
                            f"{g % ctx}; batch {b} not written (check the model dtype / inputs)"
                        )
                if _takes_chunk_rows(st.coder):
                    codes = st.coder.encode_sparse(x, chunk_rows=chunk_rows[st.key])
                else:
                    codes = st.coder.encode_sparse(x)
                counts = np.diff(codes.indptr.cpu().numpy())
                rows_idx = np.repeat(np.arange(counts.size), counts)
                lat = codes.idx.cpu().numpy().astype(np.int64)
                with serial_ops():
                    val = codes.val.float().cpu().numpy()
                g = flat[rows_idx]
                if st.subset is not None:
                    keep = st.subset[lat]
                    lat, val, g = lat[keep], val[keep], g[keep]
                results.append((lat, g, val))
            for st, (lat, g, val) in zip(states, results, strict=True):
                _update(st, lat, g, val, int(rec.sum()), ctx, cfg, cpr, key_dtype)
        batches_since += 1
        bar.update(1)
        if on_batch is not None:
            on_batch(b)
        if b == n_batches - 1:
            # the last spill runs go straight to finalize without a checkpoint of the tables
            # (a kill during finalize resumes from the previous checkpoint and redoes the batches
            # after it, which gives the same files)
            flush_id += 1
            _flush(out, states, b + 1, flush_id, skipped, commit=False)
            break
        buffered = sum(st.buf_entries for st in states)
        # time-based checkpoints write the whole tables (n·(8N+12R) bytes): space them so that
        # writing them costs at most ~2% of the run
        interval = max(cfg.checkpoint_every_s, 50 * state_seconds)
        due = (
            buffered > budget_entries
            or time.monotonic() - last_flush > interval
            or (cfg.checkpoint_every_batches and batches_since >= cfg.checkpoint_every_batches)
        )
        if due:
            flush_id += 1
            t_state = time.monotonic()
            _flush(out, states, b + 1, flush_id, skipped)
            last_flush, batches_since = time.monotonic(), 0
            state_seconds = last_flush - t_state
    bar.close()
    _finalize(out, states, manifest, skipped, tok_bytes, cfg)
    return out


def _takes_chunk_rows(coder: Any) -> bool:
    try:
        return "chunk_rows" in inspect.signature(coder.encode_sparse).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def heap_bytes(n_latents: int, top_n: int = 256, reservoir: int = 256, key_bytes: int = 4) -> int:
    """Bytes of the per-latent top-N and reservoir tables: n·(8N + 12R) with uint32 keys
    (top-N: f32 order + key; reservoir: u32 hash + key + f32 window max)."""
    return n_latents * ((4 + key_bytes) * top_n + (8 + key_bytes) * reservoir)


def memory_plan(states: list[_CoderState], cfg: CacheConfig) -> dict[str, Any]:
    """Split ``cfg.ram_budget_mb`` into fixed parts (tables, candidate buffers, statistics, one
    encode chunk per coder) and the spill buffers; refuse a budget the fixed parts exceed."""
    budget = int(cfg.ram_budget_mb * 2**20)
    heaps = sum(st.topn.table_bytes() + st.res.table_bytes() for st in states)
    cand = sum(st.topn.buffer_bytes() + st.res.buffer_bytes() for st in states)
    stats = sum(40 * st.n + (st.sketch.nbytes() if st.sketch else 0) for st in states)
    # one dense [chunk, n] f32 block of pre-activations per encode: a quarter of the budget at most,
    # the coders' own 256 MiB default, and no more rows than a batch has; at least 16 rows
    chunk_rows, enc = {}, 0
    for st in states:
        own = st.coder.chunk_rows() if hasattr(st.coder, "chunk_rows") else 1 << 30
        rows = max(16, min(own, budget // 4 // (4 * st.n), cfg.batch_rows * cfg.ctx))
        chunk_rows[st.key] = rows
        enc = max(enc, rows * 4 * st.n)
    fixed = heaps + cand + stats + enc
    mb = 2**20
    if cfg.spill_mb is not None:
        spill = int(cfg.spill_mb * mb)
    else:
        spill = budget - fixed
        if spill < 4 * mb:
            raise CacheError(
                f"ram_budget_mb={cfg.ram_budget_mb:g} is too small for these coders: top-N/reservoir "
                f"tables need {heaps / mb:.1f} MB (n·(8N+12R) for N={cfg.top_n}, R={cfg.reservoir}), "
                f"candidate buffers {cand / mb:.1f} MB, statistics/sketches {stats / mb:.1f} MB, one encode "
                f"chunk {enc / mb:.1f} MB, plus at least 4 MB of spill buffers; raise ram_budget_mb "
                f"to {(fixed + 64 * mb) / mb:.0f} or more, or lower top_n/reservoir"
            )
    return {
        "budget_bytes": budget,
        "heap_bytes": heaps,
        "candidate_bytes": cand,
        "stats_bytes": stats,
        "encode_chunk_bytes": enc,
        "spill_bytes": spill,
        "chunk_rows": chunk_rows,
    }


def _coder_config(c: Any) -> dict[str, Any]:
    cfg = getattr(c, "cfg", None)
    if cfg is None:
        return {}
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg))
    return {k: v for k, v in d.items() if isinstance(v, (int, float, str, bool, list, type(None)))}


def _bos_id(model: Any, tokenizer: Any) -> int | None:
    if tokenizer is not None and getattr(tokenizer, "bos_token_id", None) is not None:
        return int(tokenizer.bos_token_id)
    cfg = getattr(model, "config", None)
    bos = getattr(cfg, "bos_token_id", None)
    return int(bos) if isinstance(bos, int) else None


def _make_rows(docs: Any, cfg: CacheConfig, tokenizer: Any, model: Any) -> RowSet:
    if isinstance(docs, RowSet):
        return docs
    if isinstance(docs, (str, bytes)):
        raise CacheError(
            "docs is a single string; pass a list of documents (e.g. [text]), not one text "
            "(it would be cached one character per document)"
        )
    docs = list(docs)
    if not docs:
        raise CacheError("the dataset is empty: pass at least one non-empty document")
    n_str = sum(isinstance(d, str) for d in docs)
    if 0 < n_str < len(docs):
        raise CacheError(
            f"docs mixes {n_str} strings with {len(docs) - n_str} other documents; pass all "
            "strings (with tokenizer=) or all token-id lists"
        )
    if isinstance(docs[0], str):
        if tokenizer is None:
            raise CacheError("documents are strings: pass tokenizer= (or pre-tokenised id lists)")
        docs = tokenize_documents(tokenizer, docs)
    mcfg = getattr(model, "config", None)
    vocab = int(
        getattr(mcfg, "vocab_size", 0) or (len(tokenizer) if tokenizer is not None else 2**31)
    )
    pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
    eos = (
        getattr(tokenizer, "eos_token_id", None)
        if tokenizer is not None
        else getattr(mcfg, "eos_token_id", None)
    )
    if isinstance(eos, list):
        eos = eos[0]
    if pad is None:
        pad = eos if eos is not None else 0
    excl = list(cfg.exclude_tokens)
    return build_rows(
        docs,
        cfg.ctx,
        bos_id=_bos_id(model, tokenizer),
        pad_id=int(pad),
        vocab_size=vocab,
        eos_id=eos,
        mode=cfg.rows,
        max_tokens=cfg.max_tokens,
        exclude_tokens=excl,
    )


def _check_sites(model: Any, items: list[tuple[str, str, Any]]) -> None:
    from lm_kit.hookpoints import resolve

    for site, name, coder in items:
        try:
            got = resolve(model, site, probe=True)
        except ValueError as e:
            raise CacheError(
                f"site {site!r} (coder {name!r}) does not exist on this model: {e}"
            ) from None
        if len(got) != 1:
            raise CacheError(f"site {site!r} names {len(got)} hookpoints; give exactly one layer")
        width = got[0].width
        d_in = getattr(coder, "d_in", None)
        if width is not None and d_in is not None and width != d_in:
            raise CacheError(
                f"coder {name!r} expects d_in={d_in} but site {site!r} has width {width}; "
                "attach it to the site it was trained on"
            )


def _latent_subset(ids: Any, key: str, n: int) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise CacheError(f"CacheConfig.latents[{key!r}] must be a list of latent ids, got {ids!r}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= n)]
    if bad.size:
        raise CacheError(
            f"CacheConfig.latents[{key!r}] has latent ids outside 0..{n - 1} (e.g. {int(bad[0])}); "
            "pass ids of this coder's latents"
        )
    return arr


# keys the writer adds to a coder's manifest entry at finalize (not settings)
_RESULT_KEYS = ("shards", "nnz")


def _settings(coders: Any) -> Any:
    if not isinstance(coders, dict):
        return coders
    return {
        k: {kk: vv for kk, vv in v.items() if kk not in _RESULT_KEYS} if isinstance(v, dict) else v
        for k, v in coders.items()
    }


def _check_same(old: dict[str, Any], new: dict[str, Any], out: Path | None = None) -> None:
    keys = ("version", "ctx", "n_rows", "data_digest", "model_hash", "config", "coders")
    norm = {"coders": _settings}
    diffs = [
        k
        for k in keys
        if norm.get(k, lambda v: v)(old.get(k)) != norm.get(k, lambda v: v)(new.get(k))
    ]
    if diffs:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}"[:300] for k in diffs)
        raise CacheError(
            f"{out or 'the output folder'} holds a cache made with different settings "
            f"({detail}); use another output folder or delete it"
        )


def _update(
    st: _CoderState,
    lat: np.ndarray,
    g: np.ndarray,
    val: np.ndarray,
    n_rec: int,
    ctx: int,
    cfg: CacheConfig,
    cpr: int,
    key_dtype: type,
) -> None:
    st.stats.update(lat, val, n_rec)
    if lat.size:
        row, pos = np.divmod(g, ctx)
        cell = row * cpr + pos // cfg.window
        order = np.lexsort(
            (g, -val, cell, lat)
        )  # per (latent, cell): max value first, earliest on ties
        sl, sc = lat[order], cell[order]
        first = np.r_[True, (sl[1:] != sl[:-1]) | (sc[1:] != sc[:-1])]
        w_lat, w_cell, w_val, w_peak = sl[first], sc[first], val[order][first], g[order][first]
        w_peak = w_peak.astype(key_dtype)
        st.topn.update(w_lat, -w_val, w_peak, w_val)
        st.res.update(w_lat, _hash_order(window_hash(cfg.seed, w_lat, w_cell)), w_peak, w_val)
        if st.sketch is not None:
            st.sketch.update(lat, g)
    st.buf.append((lat.astype(np.uint32), g.astype(key_dtype), val.astype(np.float32)))
    st.buf_entries += lat.size


_U32_TOP = np.uint64(2**32 - 2)  # 2**32 - 1 marks an empty slot


def _hash_order(h: np.ndarray) -> np.ndarray:
    """Reservoir order: the window hash's high 32 bits (saturated below the empty marker)."""
    return np.minimum(h >> np.uint64(32), _U32_TOP).astype(np.uint32)


def _reservoir_hashes(res: SegmentedTopN, seed: int, ctx: int, window: int) -> np.ndarray:
    """Full 64-bit window hashes of the reservoir slots (recomputed from latent and peak token;
    2**64 - 1 in empty slots), computed in blocks of latents to bound temporaries."""
    order, key = res.order, res.key
    out = np.full(order.shape, np.iinfo(np.uint64).max, dtype=np.uint64)
    cpr = -(-ctx // window)
    step = max(1, (1 << 20) // max(res.N, 1))
    for a in range(0, res.n, step):
        o, k = order[a : a + step], key[a : a + step].astype(np.int64)
        filled = o != res.empty
        lat = np.broadcast_to(np.arange(a, a + o.shape[0])[:, None], o.shape)[filled]
        row, pos = np.divmod(k[filled], ctx)
        out[a : a + step][filled] = window_hash(seed, lat, row * cpr + pos // window)
    return out


def _flush(
    out: Path,
    states: list[_CoderState],
    cursor: int,
    flush_id: int,
    skipped: int,
    commit: bool = True,
) -> None:
    """Write the spill buffers as run files; with ``commit``, also the tables' state and then
    ``progress.json`` (the commit point: runs not listed there are discarded on resume)."""
    runs_dir = out / "runs"
    state_arrays: dict[str, np.ndarray] = {}
    for i, st in enumerate(states):
        if st.buf:
            lat = np.concatenate([b[0] for b in st.buf])
            tok = np.concatenate([b[1] for b in st.buf])
            val = np.concatenate([b[2] for b in st.buf])
            order = np.argsort(
                lat, kind="stable"
            )  # buffers are in token order: stays sorted by token
            name = f"c{i}_r{flush_id:06d}"
            _save_npy_atomic(
                runs_dir / f"{name}.counts.npy", np.bincount(lat, minlength=st.n).astype(np.int64)
            )
            _save_npy_atomic(runs_dir / f"{name}.tok.npy", tok[order])
            _save_npy_atomic(runs_dir / f"{name}.val.npy", val[order])
            st.runs.append(name)
            st.buf, st.buf_entries = [], 0
        if not commit:
            continue
        for k, v in st.stats.state().items():
            state_arrays[f"c{i}_stats_{k}"] = v
        state_arrays.update(st.topn.state(f"c{i}_topn_"))
        state_arrays.update(st.res.state(f"c{i}_res_"))
        if st.sketch is not None:
            state_arrays.update(st.sketch.state(f"c{i}_sketch_"))
    if not commit:
        return
    state_file = f"state_{flush_id:06d}.npz"
    _save_npz_atomic(runs_dir / state_file, **state_arrays)
    progress = {
        "cursor": cursor,
        "flush_id": flush_id,
        "state": state_file,
        "skipped_batches": skipped,
        "runs": {st.key: st.runs for st in states},
    }
    write_json_atomic(out / "progress.json", progress)
    for p in runs_dir.glob("state_*.npz"):
        if p.name != state_file:
            p.unlink()


def _restore(out: Path, states: list[_CoderState]) -> tuple[int, int, int]:
    """Load progress; discard run files not listed (written after the last committed flush)."""
    prog_path = out / "progress.json"
    runs_dir = out / "runs"
    if not prog_path.is_file():
        for p in runs_dir.iterdir():
            p.unlink()
        return 0, 0, 0
    fix = f"delete {prog_path} and {runs_dir} to restart the run (or delete the folder)"
    prog = read_json_object(prog_path, fix)
    if not {"cursor", "flush_id", "state", "skipped_batches", "runs"} <= set(prog):
        raise CacheError(f"{prog_path} is damaged (missing fields); {fix}")
    missing = [
        name
        for name in [prog["state"]]
        + [
            f"{r}.{part}.npy"
            for rs in prog["runs"].values()
            for r in rs
            for part in ("counts", "tok", "val")
        ]
        if not (runs_dir / name).is_file()
    ]
    if missing:
        raise CacheError(
            f"{out} cannot be resumed: files listed in progress.json are missing ({missing[:3]}); {fix}"
        )
    listed = set()
    for st in states:
        st.runs = list(prog["runs"].get(st.key, []))
        listed |= {f"{r}.{part}.npy" for r in st.runs for part in ("counts", "tok", "val")}
    listed.add(prog["state"])
    for p in runs_dir.iterdir():
        if p.name not in listed:
            p.unlink()
    with np.load(runs_dir / prog["state"]) as z:
        d = {k: z[k] for k in z.files}
    for i, st in enumerate(states):
        st.stats = LatentStats.from_state(
            {k[len(f"c{i}_stats_") :]: v for k, v in d.items() if k.startswith(f"c{i}_stats_")}
        )
        try:
            st.topn.load_state(d, f"c{i}_topn_")
            st.res.load_state(d, f"c{i}_res_")
            if st.sketch is not None:
                st.sketch.load_state(d, f"c{i}_sketch_")
        except (ValueError, KeyError) as e:
            raise CacheError(
                f"{out} holds progress written by another sae-core version ({e}); "
                "delete the folder and rerun"
            ) from None
    return int(prog["cursor"]), int(prog["flush_id"]), int(prog["skipped_batches"])


def _shard_bounds(counts: np.ndarray, bytes_per: float, max_bytes: float) -> list[tuple[int, int]]:
    bounds, lo, acc = [], 0, 0.0
    for i, c in enumerate(counts):
        size = c * bytes_per
        if i > lo and acc + size > max_bytes:
            bounds.append((lo, i))
            lo, acc = i, 0.0
        acc += size
    bounds.append((lo, counts.size))
    return bounds


def _encode_tok(g: np.ndarray, tok_bytes: int) -> np.ndarray:
    if tok_bytes == 3:
        out = np.empty((g.size, 3), np.uint8)
        g = g.astype(np.uint32)
        out[:, 0] = g & 0xFF
        out[:, 1] = (g >> 8) & 0xFF
        out[:, 2] = (g >> 16) & 0xFF
        return out
    return g.astype(np.uint32 if tok_bytes == 4 else np.uint64)


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _finalize(
    out: Path,
    states: list[_CoderState],
    manifest: dict[str, Any],
    skipped: int,
    tok_bytes: int,
    cfg: CacheConfig,
) -> None:
    """Counting-sort scatter of the runs into CSR shards (idempotent: reruns after a kill)."""
    runs_dir = out / "runs"
    for st in states:
        cdir = out / st.key
        if cdir.exists():
            shutil.rmtree(cdir)
        cdir.mkdir(parents=True)
        run_counts = [np.load(runs_dir / f"{r}.counts.npy") for r in st.runs]
        counts = np.sum(run_counts, axis=0) if run_counts else np.zeros(st.n, np.int64)
        run_offsets = [np.r_[0, np.cumsum(c)] for c in run_counts]
        runs = [
            (
                np.load(runs_dir / f"{r}.tok.npy", mmap_mode="r"),
                np.load(runs_dir / f"{r}.val.npy", mmap_mode="r"),
            )
            for r in st.runs
        ]
        shards = []
        for lo, hi in _shard_bounds(counts, tok_bytes + 2, cfg.shard_max_mb * 2**20):
            c = counts[lo:hi]
            nnz = int(c.sum())
            big = max(
                abs(float(st.stats.max[lo:hi].max(initial=0))),
                abs(float(st.stats.min[lo:hi].min(initial=0))),
            )
            val_dtype = np.float16 if big <= FP16_MAX else np.float32
            indptr = np.r_[0, np.cumsum(c)].astype(np.int64)
            tmp = cdir / f".tmp_shard_{lo}_{hi}"
            tmp.mkdir()
            tshape = (nnz, 3) if tok_bytes == 3 else (nnz,)
            tdt = np.uint8 if tok_bytes == 3 else (np.uint32 if tok_bytes == 4 else np.uint64)
            tok_out = np.lib.format.open_memmap(tmp / "tok.npy", mode="w+", dtype=tdt, shape=tshape)
            val_out = np.lib.format.open_memmap(
                tmp / "val.npy", mode="w+", dtype=val_dtype, shape=(nnz,)
            )
            cursor = indptr[:-1].copy()
            for rc, ro, (rtok, rval) in zip(run_counts, run_offsets, runs, strict=True):
                seg = rc[lo:hi]
                a, bnd = int(ro[lo]), int(ro[hi])
                if bnd == a:
                    continue
                starts = np.r_[0, np.cumsum(seg)[:-1]]
                within = np.arange(bnd - a) - np.repeat(starts, seg)
                dest = np.repeat(cursor, seg) + within
                tok_out[dest] = _encode_tok(np.asarray(rtok[a:bnd]), tok_bytes)
                val_out[dest] = np.asarray(rval[a:bnd]).astype(val_dtype)
                cursor += seg
            if not np.array_equal(cursor, indptr[1:]):
                raise CacheError(
                    f"{st.key} shard {lo}-{hi}: scatter wrote {int((cursor - indptr[:-1]).sum())} "
                    f"of {nnz} entries; delete the cache and rerun"
                )
            tok_out.flush()
            val_out.flush()
            del tok_out, val_out
            _save_npy_atomic(tmp / "indptr.npy", indptr)
            final = cdir / f"shard_{lo}_{hi}"
            os.replace(tmp, final)
            shards.append(
                {
                    "lo": lo,
                    "hi": hi,
                    "nnz": nnz,
                    "val_dtype": np.dtype(val_dtype).name,
                    "sha256": {f: _sha(final / f) for f in ("indptr.npy", "tok.npy", "val.npy")},
                }
            )
        _save_npz_atomic(cdir / "stats.npz", **st.stats.state())
        # peak-token keys as held (uint32 below 2**32 token positions, else uint64); full
        # 64-bit window hashes
        _save_npz_atomic(cdir / "topn.npz", val=st.topn.val, key=st.topn.key)
        _save_npz_atomic(
            cdir / "reservoir.npz",
            hash=_reservoir_hashes(st.res, cfg.seed, manifest["ctx"], cfg.window),
            key=st.res.key,
            val=st.res.val,
        )
        if st.sketch is not None:
            _save_npz_atomic(
                cdir / "cooccurrence.npz",
                minhash=st.sketch.table,
                seed=np.asarray(st.sketch.seed, np.int64),
            )
        manifest["coders"][st.key]["shards"] = shards
        manifest["coders"][st.key]["nnz"] = int(counts.sum())
    manifest["skipped_batches"] = skipped
    manifest["complete"] = True
    write_json_atomic(out / "manifest.json", manifest)
    shutil.rmtree(runs_dir, ignore_errors=True)
    (out / "progress.json").unlink(missing_ok=True)
