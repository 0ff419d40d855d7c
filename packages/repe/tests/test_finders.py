"""Planted-direction synthetic tests and finder invariants (independent closed forms)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from repe.errors import NonFiniteActivationError, PairDataError, UnknownNameError
from repe.finders import FINDERS, fit_direction, leace_erase
from repe.metrics import auroc
from repe.synthetic import planted_pairs

REAL_FINDERS = [name for name in FINDERS if name not in ("random", "repeng_pca_diff", "umap")]


@pytest.fixture(scope="module")
def planted():
    return planted_pairs(n=256, d=64, seed=0)


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", REAL_FINDERS)
def test_every_finder_recovers_planted_direction(planted, name):
    d = fit_direction(name, planted.pos, planted.neg, layer=3, seed=0)
    assert _cos(d.write[0], planted.directions[0]) > 0.9
    # the read covector is a unit vector oriented towards the positive class
    assert np.isclose(np.linalg.norm(d.read[0]), 1.0)
    assert d.read[0] @ (planted.pos - planted.neg).mean(0) > 0


def test_random_baseline_is_near_orthogonal_and_seeded(planted):
    d1 = fit_direction("random", planted.pos, planted.neg, layer=2, seed=7)
    d2 = fit_direction("random", planted.pos, planted.neg, layer=2, seed=7)
    d3 = fit_direction("random", planted.pos, planted.neg, layer=3, seed=7)
    assert np.array_equal(d1.write, d2.write)
    assert not np.allclose(d1.write, d3.write)
    assert abs(_cos(d1.write[0], planted.directions[0])) < 3 / np.sqrt(64)
    diff = planted.pos.mean(0) - planted.neg.mean(0)
    assert np.isclose(np.linalg.norm(d1.write[0]), np.linalg.norm(diff))


def test_centred_pca_compat_loses_the_concept(planted):
    with pytest.warns(UserWarning, match="parity"):
        d = fit_direction("repeng_pca_diff", planted.pos, planted.neg)
    assert abs(_cos(d.write[0], planted.directions[0])) < 0.9


def test_mean_diff_closed_form(planted):
    d = fit_direction("mean_diff", planted.pos, planted.neg)
    np.testing.assert_allclose(d.write[0], (planted.pos - planted.neg).mean(0), rtol=1e-6)
    np.testing.assert_allclose(d.mu, (planted.pos.mean(0) + planted.neg.mean(0)) / 2, rtol=1e-6)


def test_pca_pm_equals_top_eigenvector_of_second_moment(planted):
    delta = planted.pos - planted.neg
    w, v = np.linalg.eigh(delta.T @ delta / len(delta))
    top = v[:, -1]
    d = fit_direction("pca_pm", planted.pos, planted.neg)
    assert abs(_cos(d.read[0], top)) > 0.9999


def test_pca_k_recovers_two_planted_directions():
    p = planted_pairs(n=256, d=64, n_directions=2, seed=0)
    d = fit_direction("pca_k", p.pos, p.neg, k=2)
    cos = np.abs(d.read @ p.directions.T)
    assert cos[0, 0] > 0.95 and cos[1, 1] > 0.95
    assert abs(d.read[0] @ d.read[1]) < 1e-8  # orthogonal components


def test_lda_beats_mean_diff_on_unpaired_heldout_auroc():
    p = planted_pairs(n=512, d=64, seed=0)
    tr, te = slice(0, 256), slice(256, 512)
    res = {}
    for name in ("mean_diff", "lda"):
        r = fit_direction(name, p.pos[tr], p.neg[tr]).read[0]
        res[name] = auroc(p.pos[te] @ r, p.neg[te] @ r)
    assert res["lda"] > res["mean_diff"]


def test_lda_gram_path_matches_direct_solve():
    # n < D switches to the Woodbury/Gram solve; compare with a D x D solve done here
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(1)
    pos = rng.standard_normal((20, 50)) + 0.5
    neg = rng.standard_normal((20, 50))
    d = fit_direction("lda", pos, neg)
    xc = np.concatenate([pos - pos.mean(0), neg - neg.mean(0)])
    cov, _ = ledoit_wolf(xc, assume_centered=True)
    r = np.linalg.solve(cov, pos.mean(0) - neg.mean(0))
    assert _cos(d.read[0], r) > 0.9999


def test_leace_eraser_removes_linear_covariance_with_label(planted):
    d = fit_direction("leace", planted.pos, planted.neg)
    x = np.concatenate([planted.pos, planted.neg])
    z = np.concatenate([np.ones(256), np.zeros(256)])
    erased = leace_erase(x, d.stats["eraser_b"], d.stats["eraser_f"], d.stats["eraser_mu"])
    cov_after = (erased - erased.mean(0)).T @ (z - z.mean()) / len(z)
    cov_before = (x - x.mean(0)).T @ (z - z.mean()) / len(z)
    assert np.abs(cov_after).max() < 1e-6 * np.abs(cov_before).max()
    # erasure is rank-1: the orthogonal complement of f is untouched up to b
    assert np.linalg.matrix_rank(erased - x, tol=1e-8) == 1


def test_logistic_unpaired_gets_intercept_and_pattern(planted):
    pos, neg = planted.pos[:200], planted.neg[:150]
    d = fit_direction("logistic", pos, neg)
    assert d.stats["paired"] is False
    assert _cos(d.write[0], planted.directions[0]) > 0.9


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(PairDataError, match="unequal pair counts: 5 positive vs 4"):
        fit_direction("mean_diff", rng.standard_normal((5, 8)), rng.standard_normal((4, 8)))
    with pytest.raises(PairDataError, match="empty"):
        fit_direction("pca_pm", np.zeros((0, 8)), np.zeros((0, 8)))
    with pytest.raises(PairDataError, match="too few"):
        fit_direction("mean_diff", rng.standard_normal((1, 8)), rng.standard_normal((1, 8)))
    with pytest.raises(PairDataError, match="k=3"):
        fit_direction("pca_k", rng.standard_normal((2, 8)), rng.standard_normal((2, 8)), k=3)
    bad = rng.standard_normal((4, 8))
    bad[1, 2] = np.nan
    with pytest.raises(NonFiniteActivationError, match="layer 5"):
        fit_direction("mean_diff", bad, rng.standard_normal((4, 8)), layer=5)
    with pytest.raises(UnknownNameError, match="mean_diff"):
        fit_direction("meandiff", bad, bad)


def test_paired_finders_give_same_direction_as_unpaired_on_swapped_order(planted):
    # sign determination: swapping positive and negative flips every direction
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("mean_diff", "pca_pm", "pca_repe", "lda", "leace", "logistic"):
            a = fit_direction(name, planted.pos, planted.neg).read[0]
            b = fit_direction(name, planted.neg, planted.pos).read[0]
            assert _cos(a, b) < -0.99, name


def test_leace_matches_concept_erasure_peer(planted):
    ce = pytest.importorskip("concept_erasure")
    import torch

    x = np.concatenate([planted.pos, planted.neg])
    z = np.concatenate([np.ones(256), np.zeros(256)])
    d = fit_direction("leace", planted.pos, planted.neg)
    ours = leace_erase(x, d.stats["eraser_b"], d.stats["eraser_f"], d.stats["eraser_mu"])
    fitter = ce.LeaceFitter(64, 1, dtype=torch.float64, shrinkage=False)
    fitter.update(torch.tensor(x), torch.tensor(z)[:, None])
    theirs = fitter.eraser(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


class _SplitSAE:
    """A toy SAE with codes relu([x, -x]) and decoder [I; -I], so decode(encode(x)) == x."""

    def __init__(self, d):
        import torch

        self.W_dec = torch.cat([torch.eye(d), -torch.eye(d)]).double()

    def encode(self, x):
        import torch

        return torch.relu(torch.cat([x, -x], dim=-1))


def test_sae_space_directions(planted):
    from repe.errors import RepeError, VectorMismatchError
    from repe.finders import fit_direction_sae

    sae = _SplitSAE(64)
    d = fit_direction_sae("mean_diff", planted.pos, planted.neg, sae, layer=2)
    # closed form: the decoded latent mean difference is the raw mean difference
    np.testing.assert_allclose(d.write[0], (planted.pos - planted.neg).mean(0), atol=1e-10)
    assert d.stats["sae_space"] and d.stats["n_latents"] == 128
    for name in ("pca_pm", "lda"):
        d = fit_direction_sae(name, planted.pos, planted.neg, sae)
        assert _cos(d.write[0], planted.directions[0]) > 0.9, name
        assert d.read[0] @ (planted.pos - planted.neg).mean(0) > 0
    with pytest.raises(VectorMismatchError, match="hidden size 64"):
        fit_direction_sae("mean_diff", planted.pos, planted.neg, _SplitSAE(32))
    with pytest.raises(RepeError, match="encode\\(\\) and W_dec"):
        fit_direction_sae("mean_diff", planted.pos, planted.neg, object())
