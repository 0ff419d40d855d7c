"""LoRRA: the loss falls on a tiny model (needs the [lorra] extra; skipped without peft)."""

from __future__ import annotations

import pytest
from repe import Stimulus


def test_missing_peft_names_the_extra(monkeypatch, llama, tok):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "peft":
            raise ImportError("no peft")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    from repe.lorra import train_lorra

    with pytest.raises(ImportError, match=r"\[lorra\]"):
        train_lorra(llama, tok, [Stimulus(user="Is the sky blue?", prefix="Yes")])


def test_lorra_loss_decreases(tok):
    pytest.importorskip("peft")
    from lm_kit.tiny import tiny_model
    from repe.lorra import LorraConfig, train_lorra

    model = tiny_model("llama", d=32, layers=3, vocab=len(tok) + 8, seed=3)
    prompts = [
        Stimulus(user=f"Question {i}: is the movie good?", prefix="The movie was wonderful and")
        for i in range(4)
    ]
    cfg = LorraConfig(layers=[1, 2], steps=25, batch_size=4, lr=5e-3, layers_to_transform=[0, 1, 2])
    pmodel, losses = train_lorra(model, tok, prompts, cfg)
    assert losses[-1] < 0.7 * losses[0]
