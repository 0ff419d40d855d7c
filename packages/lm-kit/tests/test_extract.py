"""Batched extraction equals one-by-one forwards; the on-disk store resumes byte-identically."""

from __future__ import annotations

import json

import lm_kit.extract as extract_mod
import numpy as np
import pytest
import torch
from lm_kit.extract import ActivationStore, extract, plan_batches

TEXTS = [
    "The capital of France is Paris.",
    "hi",
    "Rain falls on the hills; rivers run to the sea; the sea rises into clouds again.",
    "A quick brown fox",
    "Numbers like 1, 2, 3",
    "ok",
    "Left padding puts pad tokens before the text.",
]


def _one_by_one(model, tok, layer):
    """Independent reference: unpadded single forwards, transformers' own hidden_states."""
    rows = []
    for t in TEXTS:
        b = tok(t, return_tensors="pt")
        rows.append(model(**b, output_hidden_states=True).hidden_states[layer + 1][0])
    return rows


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_left_padded_batches_equal_one_by_one(family, tiny_models, tiny_tok):
    model = tiny_models(family)
    ref = _one_by_one(model, tiny_tok, 1)
    last = extract(model, tiny_tok, TEXTS, "resid_post.1", "last", batch_tokens=48, progress=False)
    mean = extract(model, tiny_tok, TEXTS, "resid_post.1", "mean", batch_tokens=48, progress=False)
    allt = extract(model, tiny_tok, TEXTS, "resid_post.1", "all", batch_tokens=48, progress=False)
    torch.testing.assert_close(
        last["resid_post.1"], torch.stack([r[-1] for r in ref]), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(
        mean["resid_post.1"], torch.stack([r.mean(0) for r in ref]), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(allt["resid_post.1"], torch.cat(ref), rtol=1e-4, atol=1e-5)
    lengths = [len(r) for r in ref]
    expected_index = [(i, p) for i, n in enumerate(lengths) for p in range(n)]
    assert [tuple(x) for x in allt.index.tolist()] == expected_index


def test_plan_batches_respects_budget_and_keeps_every_document():
    lengths = [5, 17, 3, 3, 9, 40, 1]
    batches = plan_batches(lengths, batch_tokens=20)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * width <= 20
        assert len(b) == 1 or 1 - sum(lengths[i] for i in b) / (len(b) * width) <= 0.1
    assert batches[0] == [5]  # longest first
    rng = np.random.default_rng(0)
    many = rng.integers(4, 65, 500).tolist()
    planned = plan_batches(many, batch_tokens=1024, max_padding=0.1)
    padded = sum(len(b) * max(many[i] for i in b) for b in planned)
    assert 1 - sum(many) / padded <= 0.1
    assert sorted(i for b in planned for i in b) == list(range(500))


def test_store_resumes_after_a_kill_with_identical_bytes(tiny_llama, tmp_path, monkeypatch):
    model, tok = tiny_llama
    sites = ["resid_post.0", "mlp_out.2"]
    full = extract(
        model, tok, TEXTS, sites, "all", batch_tokens=24, out=tmp_path / "full", progress=False
    )
    assert full.complete and full.manifest["n_batches"] > 3

    real_run = extract_mod.run
    calls = {"n": 0}

    def dying_run(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_run(*a, **kw)

    monkeypatch.setattr(extract_mod, "run", dying_run)
    with pytest.raises(KeyboardInterrupt):
        extract(
            model, tok, TEXTS, sites, "all", batch_tokens=24, out=tmp_path / "part", progress=False
        )
    assert json.loads((tmp_path / "part" / "progress.json").read_text())["batches_done"] == 2
    monkeypatch.setattr(extract_mod, "run", real_run)
    resumed = extract(
        model, tok, TEXTS, sites, "all", batch_tokens=24, out=tmp_path / "part", progress=False
    )
    assert resumed.complete
    for s in sites:
        f = full.manifest["files"][s]
        assert (tmp_path / "full" / f).read_bytes() == (tmp_path / "part" / f).read_bytes()
    store = ActivationStore(tmp_path / "part")
    assert store["resid_post.0"].dtype == np.float16
    acts = store.to_activations()
    assert acts["mlp_out.2"].shape == (sum(full.manifest["lengths"]), model.config.hidden_size)


def test_store_refuses_a_different_extraction(tiny_llama, tmp_path):
    model, tok = tiny_llama
    extract(model, tok, TEXTS[:3], "resid_post.0", "last", out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different extraction"):
        extract(model, tok, TEXTS[:4], "resid_post.0", "last", out=tmp_path, progress=False)


def test_empty_document_is_rejected(tiny_llama):
    model, tok = tiny_llama
    with pytest.raises(ValueError, match="document 1"):
        extract(model, tok, [[1, 2], []], "resid_post.0", progress=False)
