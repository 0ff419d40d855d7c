"""delphi pitfall 3: fake highlights must not sit at a fixed position (it reseeded and always
marked position 24). Here each negative has its own RNG; positions are uniform (chi-square)."""

import numpy as np
from autointerp.rng import make_rng
from autointerp.scorers.fuzzing import FuzzingScorer, fake_mask
from autointerp.testing import OracleClient
from scipy.stats import chisquare


def test_fake_highlight_positions_are_uniform():
    n_tok = 32
    counts = np.zeros(n_tok)
    for k in range(3000):
        m = fake_mask(n_tok, 1, [1], make_rng(0, "fuzz", 0, f"neg{k}"))
        counts += m
    assert counts.min() > 0
    assert chisquare(counts).pvalue > 0.001


def test_negatives_in_one_latent_get_different_positions(examples):
    ex = examples[0]
    scorer = FuzzingScorer(client=OracleClient())
    _, neg = scorer.make_items(ex, make_rng(0, "t", 0, "x"))
    starts = set()
    for it in neg:
        toks = it.text
        starts.add(toks.index("<<") if "<<" in toks else -1)
    assert len(starts) > len(neg) // 4
    # every negative is highlighted somewhere; positives carry the real highlights
    assert all("<<" in it.text for it in neg)


def test_active_mode_moves_highlights_off_firing_tokens(examples):
    ex = examples[0]
    scorer = FuzzingScorer(client=OracleClient(), mode="active", n_pos=50, n_neg=40)
    _, neg = scorer.make_items(ex, make_rng(0, "t", 0, "x"))
    assert neg and all(it.kind == "fuzz_active" for it in neg)
    for it in neg:
        w = it.window
        # reconstruct which tokens are highlighted and check none of them fires
        text = it.text
        assert "<<" in text
        firing_words = {t.strip() for t, a in zip(w.tokens, w.acts, strict=False) if a > 0}
        marked = [seg.split(">>")[0] for seg in text.split("<<")[1:]]
        for run in marked:
            for tok in run.split():
                assert tok not in firing_words or tok in {
                    t.strip() for t, a in zip(w.tokens, w.acts, strict=False) if a == 0
                }
