from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    """A tiny random Llama + a random TopK SAE (128 latents, k=4) cached by sae-core over planted text."""
    from autointerp.synthetic import TEMPLATES, WORDLISTS
    from lm_kit.tiny import tiny_model, tiny_tokenizer
    from sae_core import SAEConfig, SparseCoder
    from sae_core.cache import CacheConfig, cache_latents

    root = tmp_path_factory.mktemp("tiny")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tok = tiny_model("llama", d=32, layers=2, vocab=512), tiny_tokenizer()
    finally:
        torch.set_num_threads(n)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    torch.manual_seed(0)
    sae = SparseCoder(
        SAEConfig(d_in=32, n_latents=128, activation="topk", k=4, site="resid_post.1")
    )
    with torch.no_grad():
        sae.W_enc.normal_(0, 1 / 6)
        sae.W_dec.copy_(sae.W_enc.T)
    sae.requires_grad_(False)
    from sae_core import save

    save(sae, root / "sae", hookpoint="resid_post.1")  # -> root/sae/resid_post.1/
    rng = torch.Generator().manual_seed(0)
    docs = []
    for _ in range(160):
        sents = []
        for _k in range(4):
            t = TEMPLATES[int(torch.randint(len(TEMPLATES), (1,), generator=rng))]
            for c, ws in WORDLISTS.items():
                t = t.replace("{" + c + "}", ws[int(torch.randint(10, (1,), generator=rng))])
            sents.append(t)
        docs.append(" ".join(sents))
    cache_latents(
        model,
        {"resid_post.1": sae},
        docs,
        root / "cache",
        CacheConfig(ctx=48, batch_rows=32, progress=False),
        tokenizer=tok,
    )
    return root
