"""The demo's comparison units on a tiny Llama: top-k MLP neurons (sae-core NeuronCoder) and a
random TopK SAE (sae-core randomized) cached in one pass and read back as autointerp sources."""

import numpy as np
import torch


def test_cache_units_neurons_and_random_sae(tmp_path):
    from autointerp.config import ExampleConfig
    from autointerp.embed import HashingEmbedder
    from autointerp.examples import ExampleBuilder
    from interp.demo import cache_units
    from lm_kit.tiny import tiny_model, tiny_tokenizer
    from sae_core import SAEConfig, SparseCoder
    from sae_core.cache import CacheConfig

    torch.manual_seed(0)
    model, tok = tiny_model("llama", d=32, layers=2, vocab=512), tiny_tokenizer()
    sae = SparseCoder(SAEConfig(d_in=32, n_latents=64, activation="topk", k=4, site="resid_post.1"))
    sae.requires_grad_(False)
    docs = [
        f"the cat number {i} saw a red ball near the old house and then slept" for i in range(60)
    ]
    cfg = CacheConfig(ctx=32, batch_rows=16, progress=False)
    src = cache_units(
        model,
        tok,
        sae,
        docs,
        tmp_path / "cu",
        ["sae", "neurons", "random_sae"],
        cfg,
        site="resid_post.1",
        neuron_layer=1,
        neuron_k=4,
    )
    assert set(src) == {"sae", "neurons", "random_sae"}  # one model pass for all three
    d_mlp = model.config.intermediate_size
    assert src["neurons"][1].n_latents == d_mlp and src["random_sae"][1].n_latents == 64
    neu = src["neurons"][1]
    firing = [i for i in range(d_mlp) if len(neu.latent(i)[0]) > 0]
    assert firing
    for i in firing[:20]:
        _, v = neu.latent(i)
        assert (v > 0).all()  # signed neuron values are read as their positive part
    ex = ExampleBuilder(
        neu, ExampleConfig(n_negatives=5, n_ref_negatives=5), HashingEmbedder(64)
    ).build(firing[0])
    assert ex.train and all(np.max(w.acts) > 0 for w in ex.train)
    # resumable: a second call reuses the complete cache
    again = cache_units(
        model,
        tok,
        sae,
        docs,
        tmp_path / "cu",
        ["sae", "neurons", "random_sae"],
        cfg,
        site="resid_post.1",
        neuron_layer=1,
        neuron_k=4,
    )
    assert again["random_sae"][1].n_latents == 64


def test_demo_token_budgets_follow_the_sizes():
    """The demo takes exactly its token budgets from whole articles: SAE-training chunks of at most
    max_len-1 tokens, and cache documents cut so that >= min_docs articles share the budget."""
    from interp.demo import FULL, QUICK, _take, _take_docs
    from lm_kit.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    docs = [" ".join(f"word{i} w{j}" for j in range(400)) for i in range(60)]
    chunks = _take(docs, tok, 5000, 256)
    assert sum(map(len, chunks)) == 5000 and max(map(len, chunks)) <= 255
    cache = _take_docs(docs, tok, 12_000, min_docs=40)
    assert sum(map(len, cache)) == 12_000 and len(cache) >= 40
    assert QUICK.cache_tokens == 30_000 and FULL.cache_tokens == 300_000  # spec: cache ~300k
    assert FULL.n_latents_sae == 4608 and FULL.k == 32 and FULL.n_explain == 16


def test_demo_intervention_parts_use_a_private_model_copy():
    """`interp demo --intervention` steers a private copy of the subject model (the local LLM
    client keeps generating with the original, unhooked), and the judge shares that copy."""
    from interp.demo import SITE, _intervention_parts
    from lm_kit.hooks import assert_no_hooks
    from lm_kit.tiny import tiny_model, tiny_tokenizer
    from sae_core import SAEConfig, SparseCoder

    model, tok = tiny_model("llama", d=32, layers=7, vocab=512), tiny_tokenizer()
    sae = SparseCoder(SAEConfig(d_in=32, n_latents=16, activation="topk", k=2, site=SITE))
    sae.requires_grad_(False)
    with torch.no_grad():
        sae.W_dec.copy_(torch.randn(16, 32, generator=torch.Generator().manual_seed(0)))
    steerer, judge = _intervention_parts(model, tok, sae)
    assert steerer.model is not model and judge.model is steerer.model
    ses = steerer.session([tok("the cat sat", add_special_tokens=False)["input_ids"]])
    assert ses.kl(steerer.direction(3), 0.0) == 0.0 and ses.kl(steerer.direction(3), 5.0) > 0
    assert steerer.encode(torch.zeros(1, 2, 32)).shape[-1] == 16
    assert_no_hooks(model)
    assert_no_hooks(steerer.model)
