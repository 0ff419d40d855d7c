"""A real kill -9 in the middle of caching: a child process SIGKILLs itself after batch 3 (batches
0-1 committed, 2-3 in RAM only); this process then resumes the same folder and must produce files
byte-identical to an uninterrupted run, without redoing the committed batches."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sae_core import SparseCoder
from sae_core.cache import CacheConfig, LatentCache, cache_latents
from sae_core.errors import CacheError

SITE = "resid_post.1"

# the child and this process build the same model (tiny_model is seeded), SAE, documents and config
SETUP = """
import numpy as np, torch
from lm_kit.tiny import tiny_model
from sae_core import SAEConfig, SparseCoder
from sae_core.cache import CacheConfig

def setup(model=None):
    torch.set_num_threads(1)
    model = model if model is not None else tiny_model("llama", d=64, layers=2, vocab=512)
    g = torch.Generator().manual_seed(0)
    sae = SparseCoder(SAEConfig(d_in=64, n_latents=96, activation="topk", k=6, site="resid_post.1"))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(64, 96, generator=g) / 8)
        sae.W_dec.copy_(sae.W_enc.T)
        sae.b_enc.copy_(torch.randn(96, generator=g) * 0.05)
    sae.requires_grad_(False)
    rng = np.random.default_rng(0)
    docs = [rng.integers(4, 512, size=int(rng.integers(3, 80))).tolist() for _ in range(23)]
    cfg = CacheConfig(ctx=32, batch_rows=4, top_n=8, reservoir=5, window=8, progress=False,
                      checkpoint_every_batches=2)
    return model, sae, docs, cfg
"""

CHILD = (
    SETUP
    + """
import os, signal, sys
from sae_core.cache import cache_latents

def die(b):
    if b == 3:
        os.kill(os.getpid(), signal.SIGKILL)

model, sae, docs, cfg = setup()
cache_latents(model, {"resid_post.1": sae}, docs, sys.argv[1], cfg, on_batch=die)
print("NOT KILLED")
"""
)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_identical(tmp_path, tiny_llama):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    out = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert (out / "progress.json").is_file(), "batches 0-1 must have been committed"
    with pytest.raises(CacheError, match="unfinished"):
        LatentCache.open(out)

    ns: dict = {}
    exec(textwrap.dedent(SETUP), ns)  # noqa: S102 - the same setup code the child ran
    model, sae, docs, cfg = ns["setup"](tiny_llama[0])
    assert isinstance(sae, SparseCoder) and isinstance(cfg, CacheConfig)
    seen: list[int] = []
    cache_latents(model, {SITE: sae}, docs, out, cfg, on_batch=seen.append)
    assert seen[0] == 2, "batches 0-1 were committed before the kill and must not be redone"

    ref = tmp_path / "ref"
    cache_latents(model, {SITE: sae}, docs, ref, cfg)
    assert _digest(out) == _digest(ref)
    c = LatentCache.open(out)
    assert c.meta["nnz"] > 0 and int(np.asarray(c.stats.count).sum()) == c.meta["nnz"]
