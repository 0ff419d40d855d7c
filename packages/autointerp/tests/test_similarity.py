"""SAE<->SAE matching against brute force (n <= 7), dense MMCS, and planted structure."""

import itertools

import numpy as np
import pytest
from autointerp.embed import HashingEmbedder
from autointerp.similarity import SAEView, agreement, layer_matrix, match_saes, mmcs


def _brute_best(S):
    n = S.shape[0]
    return max(sum(S[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))


@pytest.mark.parametrize("n", [3, 5, 7])
def test_decoder_hungarian_equals_brute_force(n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
    r = match_saes(SAEView(W_dec=a), SAEView(W_dec=b), "decoder")
    ua = a / np.linalg.norm(a, axis=1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    S = ua @ ub.T
    assert r.similarity.sum() == pytest.approx(_brute_best(S), abs=1e-5)
    assert sorted(r.pairs[:, 0]) == list(range(n)) and sorted(r.pairs[:, 1]) == list(range(n))


def test_mmcs_blockwise_equals_dense_and_recovers_permutation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 16))
    perm = rng.permutation(50)
    b = a[perm] * rng.uniform(0.5, 2, size=(50, 1))  # rescaled rows: cosine ignores norms
    m, arg = mmcs(a, b, block=7)
    assert m == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(perm[arg], np.arange(50))  # row i of A is row arg[i] of B
    c = rng.normal(size=(30, 16))
    dense = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (
        c / np.linalg.norm(c, axis=1, keepdims=True)
    ).T
    assert mmcs(a, c, block=4)[0] == pytest.approx(dense.max(1).mean(), abs=1e-5)
    r = match_saes(SAEView(W_dec=a), SAEView(W_dec=b), "decoder")
    assert all(perm[j] == i for i, j in r.pairs) and r.mean > r.baseline


def test_explanation_matching_beats_shuffled_and_agrees_with_decoder():
    words = ["cats", "rain", "bridges", "violins", "taxes", "volcanoes"]
    rng = np.random.default_rng(1)
    W = rng.normal(size=(6, 12))
    perm = rng.permutation(6)
    a = SAEView({i: f"mentions of {w}" for i, w in enumerate(words)}, W)
    b = SAEView(
        {int(perm[i]): f"mentions of {w}" for i, w in enumerate(words)}, W[np.argsort(perm)]
    )
    e = match_saes(a, b, "explanations", embedder=HashingEmbedder(256))
    d = match_saes(a, b, "decoder")
    assert e.mean == pytest.approx(1.0, abs=1e-5) and e.baseline < e.mean
    assert all(perm[i] == j for i, j in e.pairs)
    assert agreement(e, d) == 1.0


def test_greedy_fallback_is_one_to_one():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    r = match_saes(SAEView(W_dec=a), SAEView(W_dec=b), "decoder", max_exact=10, topk=5)
    assert "greedy" in r.flags
    assert len(set(r.pairs[:, 0])) == len(r.pairs) == len(set(r.pairs[:, 1]))


def test_layer_matrix_diagonal_and_errors():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(20, 10))
    layers = [
        SAEView(W_dec=base + s * rng.normal(size=base.shape), name=f"L{k}")
        for k, s in enumerate((0.0, 0.3, 3.0))
    ]
    out = layer_matrix(layers, methods=("decoder",))
    M = out["decoder"]
    assert out["labels"] == ["L0", "L1", "L2"]
    assert np.allclose(np.diag(M), 1.0, atol=1e-5) and M[0, 1] > M[0, 2]
    with pytest.raises(ValueError, match="shared basis"):
        mmcs(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="embedder"):
        match_saes(SAEView({0: "x"}), SAEView({0: "y"}), "explanations")
