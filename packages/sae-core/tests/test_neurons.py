"""NeuronCoder: top-k semantics, rotation orthogonality and exact reconstruction at k = d_mlp, caching
through the same interface (signed values kept), residual directions; randomized() control."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sae_core import SAEConfig, SparseCoder
from sae_core.cache import CacheConfig, LatentCache, cache_latents
from sae_core.neurons import NeuronCoder, random_orthogonal, randomized


def test_topk_by_value_and_abs():
    nc = NeuronCoder(6, k=2)
    x = torch.tensor([[0.5, -3.0, 2.0, 0.1, -0.2, 1.0]])
    assert sorted(nc.encode_sparse(x).idx.tolist()) == [2, 5]
    nca = NeuronCoder(6, k=2, select="abs")
    codes = nca.encode_sparse(x)
    assert sorted(codes.idx.tolist()) == [1, 2] and sorted(codes.val.tolist()) == [-3.0, 2.0]


def test_rotation_is_orthogonal_and_full_k_reconstructs():
    R = random_orthogonal(16, 3)
    torch.testing.assert_close(R @ R.T, torch.eye(16), atol=1e-5, rtol=0)
    nc = NeuronCoder(16, k=16, rotate=True, seed=3)
    x = torch.randn(5, 16)
    torch.testing.assert_close(nc.decode(nc.encode(x)), x, atol=1e-5, rtol=0)


def test_neurons_cache_like_an_sae(tmp_path, tiny_llama):
    model = tiny_llama[0]
    nc = NeuronCoder.from_model(model, layer=0, k=4)
    assert nc.residual_directions().shape == (nc.n_latents, 64)
    torch.testing.assert_close(
        nc.residual_directions()[3], model.model.layers[0].mlp.down_proj.weight[:, 3]
    )
    rng = np.random.default_rng(0)
    docs = [rng.integers(4, 512, size=20).tolist() for _ in range(5)]
    cfg = CacheConfig(ctx=16, batch_rows=2, top_n=4, reservoir=4, window=8, progress=False)
    c = LatentCache.open(cache_latents(model, {"neurons.0": nc}, docs, tmp_path / "c", cfg))
    assert (
        c.stats.count.sum() == 4 * c.stats.n_recorded
    )  # exactly k signed values per recorded token


def test_randomized_control_keeps_shapes_and_norms():
    sae = SparseCoder(SAEConfig(d_in=8, n_latents=20, activation="topk", k=3))
    with torch.no_grad():
        sae.W_dec.normal_()
    r = randomized(sae, seed=1)
    torch.testing.assert_close(r.W_dec.norm(dim=1), sae.W_dec.norm(dim=1))
    torch.testing.assert_close(r.W_enc, r.W_dec.T)
    assert not torch.allclose(r.W_dec, sae.W_dec)
    with pytest.raises(Exception, match="k must be"):
        NeuronCoder(4, k=5)
