"""The real offline MiniLM embedder on planted latents: the correct explanation ranks the latent's
windows above negatives better than a wrong one (spec: for >= 90% of latents)."""

import asyncio

import numpy as np
import pytest
from autointerp.embed import MiniLMEmbedder
from autointerp.schema import Explanation
from autointerp.scorers import get_scorer


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEmbedder(batch_size=128)


def test_minilm_unit_norm_and_semantic(minilm):
    e = minilm.embed(["a cat and a dog", "a kitten and a puppy", "tax law of contracts"])
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5) and e.shape == (3, 384)
    assert e[0] @ e[1] > e[0] @ e[2]


@pytest.mark.slow
def test_minilm_correct_beats_wrong_on_planted(planted, examples, minilm):
    wins = 0
    lats = [p for p in planted.latents if p.kind == "token_class"]
    for p in lats:
        ex = examples[p.index]
        sc = get_scorer("embedding", embedder=minilm, n_pos=30, n_neg=30, bootstrap_b=0)
        vals = {}
        for which, z in (("true", p.true), ("wrong", p.wrong)):
            r = asyncio.run(sc.score(ex, Explanation(latent=p.index, explainer="gt", text=z)))
            vals[which] = r.value
        wins += vals["true"] > vals["wrong"]
    assert wins / len(lats) >= 0.9
