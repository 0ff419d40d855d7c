"""Streaming latent cache: equality with direct encoding, kill-and-resume identity, online statistics
against brute force, document-bounded windows, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from lm_kit.hooks import assert_no_hooks, capture, run
from sae_core import SAEConfig, SparseCoder
from sae_core.cache import CacheConfig, LatentCache, cache_latents, window_hash
from sae_core.errors import CacheError

SITE = "resid_post.1"
CTX = 32


@pytest.fixture(scope="module")
def model_tok(tiny_llama):
    return tiny_llama


@pytest.fixture(scope="module")
def sae():
    torch.manual_seed(0)
    s = SparseCoder(SAEConfig(d_in=64, n_latents=96, activation="topk", k=6, site=SITE))
    with torch.no_grad():
        s.W_enc.normal_(0, 1 / 8)
        s.W_dec.copy_(s.W_enc.T)
        s.b_enc.normal_(0, 0.05)
    return s.requires_grad_(False)


def _docs(n=23, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(4, 512, size=int(rng.integers(3, 80))).tolist() for _ in range(n)]


def _cfg(**kw):
    base = dict(ctx=CTX, batch_rows=4, top_n=8, reservoir=5, window=8, progress=False)
    base.update(kw)
    return CacheConfig(**base)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_cache_matches_direct_encoding(tmp_path, model_tok, sae):
    model, tok = model_tok
    out = cache_latents(model, {SITE: sae}, _docs(), tmp_path / "c", _cfg(), tokenizer=tok)
    assert_no_hooks(model)
    c = LatentCache.open(out, verify=True)
    assert c.tokens.dtype == np.uint16 and c.tokens.shape == (c.n_rows, CTX)
    # independent: dense encoding of every row's activations, masked by real non-BOS tokens
    dense = np.zeros((c.n_rows * CTX, sae.n_latents), np.float32)
    for r0 in range(0, c.n_rows, 4):
        ids = torch.from_numpy(np.asarray(c.tokens[r0 : r0 + 4]).astype(np.int64))
        lengths = torch.from_numpy(np.array(c.rows[r0 : r0 + 4, 2]))
        attn = (torch.arange(CTX)[None] < lengths[:, None]).long()
        with capture(model, SITE) as acts:
            run(model, input_ids=ids, attention_mask=attn)
        f = sae.encode(acts[SITE].float()).numpy().reshape(-1, sae.n_latents)
        dense[r0 * CTX : r0 * CTX + f.shape[0]] = f
    rec = np.zeros((c.n_rows, CTX), bool)
    for r, (_, _, length) in enumerate(np.asarray(c.rows)):
        rec[r, 1:length] = True  # BOS at 0, padding after length
    assert np.array_equal(c.recorded, rec)
    dense[~rec.ravel()] = 0
    total = 0
    for i in range(sae.n_latents):
        tok_i, val_i = c.latent(i)
        expect = np.flatnonzero(dense[:, i] > 0)
        assert np.array_equal(tok_i, expect), f"latent {i}"
        np.testing.assert_allclose(val_i, dense[expect, i], rtol=1e-3, atol=1e-3)  # fp16 storage
        total += tok_i.size
    assert c.stats.count.sum() == total == (dense > 0).sum()
    assert c.stats.n_recorded == rec.sum()
    np.testing.assert_allclose(c.stats.max, dense.max(0), rtol=1e-5)


def test_online_topn_reservoir_equal_brute_force(tmp_path, model_tok, sae):
    model, tok = model_tok
    c = LatentCache.open(
        cache_latents(model, {SITE: sae}, _docs(), tmp_path / "c", _cfg(), tokenizer=tok)
    )
    W, N, R = 8, 8, 5
    for i in range(sae.n_latents):
        tok_i, val_i = c.latent(i)
        cells: dict[int, tuple[float, int]] = {}
        for g, v in zip(tok_i.tolist(), val_i.tolist(), strict=True):
            row, pos = divmod(g, CTX)
            cell = row * (CTX // W) + pos // W
            if cell not in cells or v > cells[cell][0]:
                cells[cell] = (v, g)
        best = sorted(cells.values(), key=lambda t: (-t[0], t[1]))[:N]
        vals, peaks = c.topn(i)
        np.testing.assert_allclose(vals, [b[0] for b in best], rtol=1e-3, atol=1e-3)
        assert len(peaks) == len(best)
        # reservoir order: the hash's high 32 bits (saturated below 2**32 - 1), then the peak
        # token (only matters on a 32-bit collision; peaks themselves are not compared: the CSR
        # holds fp16 values, whose ties can move the arg-max within a window)
        hashes = sorted(
            (min(int(window_hash(0, i, cell)) >> 32, 2**32 - 2), g, int(window_hash(0, i, cell)), v)
            for cell, (v, g) in cells.items()
        )[:R]
        h, _, vals_r = c.reservoir(i)
        assert h.tolist() == [x[2] for x in hashes]
        np.testing.assert_allclose(vals_r, [x[3] for x in hashes], rtol=1e-3, atol=1e-3)


def test_kill_and_resume_is_identical(tmp_path, model_tok, sae):
    model, tok = model_tok
    docs = _docs()
    ref = cache_latents(
        model,
        {SITE: sae},
        docs,
        tmp_path / "ref",
        _cfg(checkpoint_every_batches=1, cooccurrence_bins=32),
        tokenizer=tok,
    )

    class Killed(Exception):
        pass

    def die_after_3(b):
        if b == 3:
            raise Killed

    out = tmp_path / "resumed"
    with pytest.raises(Killed):
        cache_latents(
            model,
            {SITE: sae},
            docs,
            out,
            _cfg(checkpoint_every_batches=2, cooccurrence_bins=32),
            tokenizer=tok,
            on_batch=die_after_3,
        )
    assert (out / "progress.json").is_file()
    with pytest.raises(CacheError, match="unfinished"):
        LatentCache.open(out)
    seen = []
    cache_latents(
        model,
        {SITE: sae},
        docs,
        out,
        _cfg(checkpoint_every_batches=2, cooccurrence_bins=32),
        tokenizer=tok,
        on_batch=seen.append,
    )
    assert seen[0] == 2, "batches 0-1 were committed before the kill and must not be redone"
    assert _digest(out) == _digest(ref)


def test_small_ram_budget_spills_and_matches(tmp_path, model_tok, sae):
    model, tok = model_tok
    a = cache_latents(model, {SITE: sae}, _docs(), tmp_path / "a", _cfg(), tokenizer=tok)
    b = cache_latents(
        model,
        {SITE: sae},
        _docs(),
        tmp_path / "b",
        _cfg(spill_mb=0.02, shard_max_mb=0.005),
        tokenizer=tok,
    )
    ca, cb = LatentCache.open(a), LatentCache.open(b)
    assert len(cb._shards) > 1
    for i in range(sae.n_latents):
        ta, va = ca.latent(i)
        tb, vb = cb.latent(i)
        assert np.array_equal(ta, tb) and np.array_equal(va, vb)


def test_windows_stay_in_document(tmp_path, model_tok, sae):
    model, tok = model_tok
    docs = _docs()
    c = LatentCache.open(
        cache_latents(model, {SITE: sae}, docs, tmp_path / "c", _cfg(), tokenizer=tok)
    )
    n = 0
    for i in range(sae.n_latents):
        for w in c.top_windows(i, n=8, width=16, peak_offset=12):
            doc = docs[w.doc_id]
            assert w.tokens.tolist() == doc[w.doc_offset : w.doc_offset + len(w.tokens)]
            assert w.start <= w.peak_pos < w.end
            acts = c.window_activations(i, w)
            assert acts[w.peak_index] == pytest.approx(w.max_activation, rel=2e-3)
            n += 1
    assert n > 0
    busiest = int(np.argmax(c.stats.count))
    tr = c.quantile_sample(busiest, bins=4, per_bin=50, split="train")
    te = c.quantile_sample(busiest, bins=4, per_bin=50, split="test")
    assert tr and te and not ({w.peak for w in tr} & {w.peak for w in te})


def test_bad_input(tmp_path, model_tok, sae):
    model, tok = model_tok
    with pytest.raises(CacheError, match="empty"):
        cache_latents(model, {SITE: sae}, [], tmp_path / "e", _cfg(), tokenizer=tok)
    with pytest.raises(CacheError, match="empty"):
        cache_latents(model, {SITE: sae}, [[], []], tmp_path / "e2", _cfg(), tokenizer=tok)
    with pytest.raises(CacheError, match="resid_post.9"):
        cache_latents(model, {"resid_post.9": sae}, _docs(), tmp_path / "h", _cfg(), tokenizer=tok)
    wide = SparseCoder(SAEConfig(d_in=32, n_latents=16, activation="topk", k=2))
    with pytest.raises(CacheError, match="d_in=32.*width 64"):
        cache_latents(model, {SITE: wide}, _docs(), tmp_path / "w", _cfg(), tokenizer=tok)
    with pytest.raises(CacheError, match="ram_budget_mb=1 is too small.*raise ram_budget_mb"):
        cache_latents(
            model, {SITE: sae}, _docs(), tmp_path / "b", _cfg(ram_budget_mb=1), tokenizer=tok
        )
    assert not (tmp_path / "b").exists()  # refused before writing anything
    cache_latents(model, {SITE: sae}, _docs(), tmp_path / "x", _cfg(), tokenizer=tok)
    with pytest.raises(CacheError, match="different settings"):
        cache_latents(model, {SITE: sae}, _docs(seed=1), tmp_path / "x", _cfg(), tokenizer=tok)
    assert_no_hooks(model)


def test_cooccurrence_sketch_against_exact_jaccard(tmp_path, model_tok, sae):
    from sae_core.cache import MinHashSketch

    model, tok = model_tok
    c = LatentCache.open(
        cache_latents(
            model,
            {SITE: sae},
            _docs(),
            tmp_path / "c",
            _cfg(cooccurrence_bins=128, spill_mb=0.02),
            tokenizer=tok,
        )
    )
    toks = [c.latent(i)[0] for i in range(sae.n_latents)]
    # the streamed sketch equals one built from the finished CSR (order/spill independent)
    ref = MinHashSketch(sae.n_latents, 128, seed=0)
    for i, t in enumerate(toks):
        ref.update(np.full(t.size, i), t)
    assert np.array_equal(c.cooccurrence_sketch, ref.table)
    errs = []
    for i in range(sae.n_latents):
        est = c.jaccard(i, None)
        for j in range(i + 1, sae.n_latents):
            a, b = set(toks[i].tolist()), set(toks[j].tolist())
            if len(a | b) >= 20:
                errs.append(est[j] - len(a & b) / len(a | b))
                assert c.jaccard(i, j) == est[j]
    errs = np.asarray(errs)
    assert errs.size > 100
    assert abs(errs.mean()) < 0.02 and np.abs(errs).mean() < 0.05
    c2 = LatentCache.open(
        cache_latents(model, {SITE: sae}, _docs(), tmp_path / "d", _cfg(), tokenizer=tok)
    )
    with pytest.raises(CacheError, match="cooccurrence_bins=128"):
        c2.jaccard(0, 1)
