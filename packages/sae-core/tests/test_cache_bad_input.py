"""Bad input to the latent cache writer and reader: clear CacheErrors, nothing silently wrong."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from sae_core import SAEConfig, SparseCoder
from sae_core.cache import CacheConfig, LatentCache, cache_latents
from sae_core.errors import CacheError, LatentIndexError

SITE = "resid_post.1"


@pytest.fixture(scope="module")
def sae():
    torch.manual_seed(0)
    s = SparseCoder(SAEConfig(d_in=64, n_latents=24, activation="topk", k=4, site=SITE))
    with torch.no_grad():
        s.W_enc.normal_(0, 1 / 8)
        s.W_dec.copy_(s.W_enc.T)
    return s.requires_grad_(False)


def _docs():
    rng = np.random.default_rng(0)
    return [rng.integers(4, 512, size=int(rng.integers(3, 30))).tolist() for _ in range(6)]


def _cfg(**kw):
    base = dict(ctx=16, batch_rows=4, top_n=4, reservoir=3, window=8, progress=False)
    return CacheConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def built(tiny_llama, sae, tmp_path_factory):
    model, tok = tiny_llama
    out = tmp_path_factory.mktemp("cache") / "c"
    return cache_latents(model, {SITE: sae}, _docs(), out, _cfg(), tokenizer=tok)


def test_rerun_of_a_finished_cache_returns_it(tiny_llama, sae, built):
    """A finished cache used to be refused as 'different settings' (the manifest gains shard
    lists at finalize); the same arguments now return the folder unchanged."""
    model, tok = tiny_llama
    before = (built / "manifest.json").read_text()
    assert cache_latents(model, {SITE: sae}, _docs(), built, _cfg(), tokenizer=tok) == built
    assert (built / "manifest.json").read_text() == before
    with pytest.raises(CacheError, match=rf"{built} holds a cache made with different settings"):
        cache_latents(model, {SITE: sae}, _docs(), built, _cfg(top_n=2), tokenizer=tok)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"batch_rows": 0}, r"CacheConfig.batch_rows must be a positive integer, got 0"),
        ({"top_n": 0}, r"CacheConfig.top_n must be a positive integer"),
        ({"reservoir": -1}, r"CacheConfig.reservoir must be a positive integer"),
        ({"cooccurrence_bins": 100}, r"cooccurrence_bins must be 0 \(off\) or a power of two"),
        ({"max_tokens": 0}, r"CacheConfig.max_tokens must be positive or None"),
        ({"spill_mb": -1.0}, r"CacheConfig.spill_mb must be positive or None"),
        ({"latents": {f"{SITE}/sae": [0, 99]}}, r"latent ids outside 0..23 \(e.g. 99\)"),
        (
            {"latents": {"resid_post.0/sae": [0]}},
            r"names coders \['resid_post.0/sae'\] that are not",
        ),
    ],
)
def test_cache_config_out_of_range(tiny_llama, sae, tmp_path, kw, message):
    model, tok = tiny_llama
    with pytest.raises(CacheError, match=message):
        cache_latents(model, {SITE: sae}, _docs(), tmp_path / "c", _cfg(**kw), tokenizer=tok)
    assert not (tmp_path / "c").exists()


def test_bad_documents_and_coders(tiny_llama, sae, tmp_path):
    model, tok = tiny_llama

    def run(coders=None, docs=None):
        c = {SITE: sae} if coders is None else coders
        return cache_latents(model, c, docs, tmp_path / "c", _cfg(), tokenizer=tok)

    with pytest.raises(CacheError, match="docs is a single string; pass a list of documents"):
        run(docs="one text, which would be cached one character per document")
    with pytest.raises(CacheError, match="docs mixes 1 strings with 1 other documents"):
        run(docs=[[5, 6, 7], "text"])
    with pytest.raises(CacheError, match="document 1 is not a flat list of integer token ids"):
        run(docs=[[5, 6], [5.7, 6.2]])
    with pytest.raises(CacheError, match="document 0 is not a flat list"):
        run(docs=[[[5, 6], [7, 8]]])
    with pytest.raises(CacheError, match="got a single coder; pass {site: coder}"):
        run(coders=sae, docs=_docs())
    with pytest.raises(CacheError, match="is a str, not a coder; load it first"):
        run(coders={SITE: "path/to/sae"}, docs=_docs())
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match="is a file; pass a new"):
        cache_latents(model, {SITE: sae}, _docs(), tmp_path / "file", _cfg(), tokenizer=tok)


def test_damaged_progress_and_manifest(tiny_llama, sae, tmp_path):
    model, tok = tiny_llama

    class Killed(Exception):
        pass

    def die(b):
        if b == 1:
            raise Killed

    out = tmp_path / "c"
    cfg = _cfg(checkpoint_every_batches=1)
    with pytest.raises(Killed):
        cache_latents(model, {SITE: sae}, _docs(), out, cfg, tokenizer=tok, on_batch=die)
    other = tmp_path / "other"
    shutil.copytree(out, other)
    state = json.loads((out / "progress.json").read_text())["state"]
    (out / "runs" / state).unlink()
    with pytest.raises(CacheError, match=r"cannot be resumed: files listed in progress.json are"):
        cache_latents(model, {SITE: sae}, _docs(), out, cfg, tokenizer=tok)
    (other / "progress.json").write_text("{")
    with pytest.raises(CacheError, match=r"progress.json is damaged .*delete .*progress.json"):
        cache_latents(model, {SITE: sae}, _docs(), other, cfg, tokenizer=tok)
    (other / "manifest.json").write_text("{")
    with pytest.raises(CacheError, match=r"manifest.json is damaged"):
        cache_latents(model, {SITE: sae}, _docs(), other, cfg, tokenizer=tok)


def test_reader_damaged_or_newer_cache(built, tmp_path):
    c = tmp_path / "c"
    shutil.copytree(built, c)
    m = json.loads((c / "manifest.json").read_text())
    (c / "manifest.json").write_text(json.dumps({**m, "version": 99}))
    with pytest.raises(CacheError, match="format version 99; this sae-core reads versions 1..1"):
        LatentCache.open(c)
    (c / "manifest.json").write_text("{trunc")
    with pytest.raises(CacheError, match="manifest.json is damaged"):
        LatentCache.open(c)
    (c / "manifest.json").write_text(json.dumps(m))
    shutil.rmtree(next((c / SITE / "sae").glob("shard_*")))
    (c / "tokens.npy").unlink()
    lc = LatentCache.open(c)
    with pytest.raises(CacheError, match="indptr.npy is missing; the cache is damaged"):
        lc.latent(0)
    with pytest.raises(CacheError, match="tokens.npy is missing"):
        lc.tokens  # noqa: B018
    with pytest.raises(CacheError, match="is missing; the cache is damaged"):
        LatentCache.open(c, verify=True)


def test_reader_indices_out_of_range(built):
    c = LatentCache.open(built)
    n = c.n_latents
    for fn in (c.latent, c.topn, c.reservoir, c.max_activation):
        for i in (-1, n):
            with pytest.raises(LatentIndexError, match=rf"latent {i} out of range 0..{n - 1}"):
                fn(i)
    with pytest.raises(IndexError):  # LatentIndexError is also an IndexError
        c.topn(-1)
    with pytest.raises(LatentIndexError, match="peak token -1 out of range"):
        c.window(-1)
    with pytest.raises(LatentIndexError, match=r"row -1 out of range"):
        c.dense_row_activations(0, -1)
    with pytest.raises(CacheError, match="window width must be positive"):
        c.window(1, width=0)
    with pytest.raises(CacheError, match="bins must be positive"):
        c.quantile_sample(0, bins=0)
    with pytest.raises(CacheError, match="n must be positive"):
        c.top_windows(0, n=0)
