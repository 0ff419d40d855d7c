import numpy as np
import pytest
import scipy.sparse as sp
from autointerp.config import ExampleConfig
from autointerp.examples import ExampleBuilder
from autointerp.negatives.cooccur import CooccurrenceIndex
from autointerp.source import UnknownLatentError
from autointerp.splits import doc_split
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 3000))
def test_doc_split_is_a_partition_by_document(seed, n):
    docs = np.arange(n)
    s = doc_split(np.r_[docs, docs], seed)
    assert set(np.unique(s)) <= {0, 1, 2}
    assert (s[:n] == s[n:]).all()  # a document always lands in the same split


def test_split_proportions_roughly_50_30_20():
    s = doc_split(np.arange(20000), 0)
    frac = np.bincount(s, minlength=3) / len(s)
    assert np.allclose(frac, [0.5, 0.3, 0.2], atol=0.02)


def test_no_train_test_overlap_and_negatives_silent(examples):
    for ex in examples.values():
        train_docs = {w.doc_id for w in ex.train + ex.val}
        test_docs = {w.doc_id for w in ex.test}
        neg_docs = {w.doc_id for w in ex.negatives + ex.ref_negatives}
        assert not train_docs & test_docs  # no train/test leak (delphi pitfall 1)
        assert not (train_docs | test_docs) & neg_docs
        assert not {w.key() for w in ex.train} & {w.key() for w in ex.val}
        keys = [w.key() for w in ex.negatives + ex.ref_negatives]
        assert len(keys) == len(set(keys))  # without replacement
        for w in ex.negatives + ex.ref_negatives:
            assert all(a == 0 for a in w.acts)
        for w in ex.train + ex.test:
            assert w.max_act > 0 and len(w.tokens) <= 32


def test_windows_stay_in_one_document_and_peak_at_offset(planted, examples):
    src = planted.source
    for ex in examples.values():
        for w in ex.train + ex.test + ex.negatives:
            assert len(set(src.doc_ids[w.start : w.start + len(w.tokens)])) == 1
            assert src.valid[w.start : w.start + len(w.tokens)].all()  # BOS never shown


def test_quantile_sampler_spreads_over_bins(examples):
    ex = examples[0]
    qs = np.bincount([w.quantile for w in ex.test], minlength=10)
    assert (qs > 0).sum() >= 8
    assert len(ex.train) == 40 and len(ex.val) == 10


def test_negative_mix_contains_all_types(examples):
    kinds = {w.kind for w in examples[0].negatives}
    assert kinds == {"neg_random", "neg_neighbour", "neg_embed"}
    assert len(examples[0].negatives) == 100


def test_flags_dead_dense_low_support(planted, examples):
    kinds = {p.kind: p.index for p in planted.latents}
    assert "dead" in examples[kinds["dead"]].flags
    assert "dense" in examples[kinds["dense"]].flags


def test_unknown_latent_error_lists_range(builder):
    with pytest.raises(UnknownLatentError, match="0..10"):
        builder.build(99)


def test_sparse_cooccurrence_matches_dense_jaccard():
    rng = np.random.default_rng(0)
    dense = (rng.random((300, 40)) < 0.1) * rng.random((300, 40))
    idx = CooccurrenceIndex(sp.csc_matrix(dense), top=5, block=7)
    a = (dense > 0).astype(float)
    c = a.T @ a
    for i in range(40):
        js, jac = idx.neighbours(i)
        expect = np.array(
            [c[i, j] / (c[i, i] + c[j, j] - c[i, j]) if c[i, j] else 0 for j in range(40)]
        )
        expect[i] = -1
        order = np.lexsort((np.arange(40), -expect))
        top = [j for j in order if expect[j] > 0][:5]
        assert list(js) == top
        assert np.allclose(jac, expect[top])


def test_grid_alignment(planted):
    b = ExampleBuilder(planted.source, ExampleConfig(align="grid"))
    ex = b.build(0)
    seg_lo = b.seg_lo
    assert all((w.start - seg_lo[w.start]) % 32 == 0 for w in ex.train)
