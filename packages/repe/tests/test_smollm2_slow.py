"""SmolLM2-135M-Instruct, offline: held-out reading and steering (acceptance from the spec)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_smollm2_reading_and_steering(tmp_path):
    pytest.importorskip("gguf")
    from lm_kit import load_model
    from repe import SteerSpec, Stimulus, fit_reading_vector, load_vector, save_vector, steer
    from repe.data.builders import (
        SENTIMENT_TEST_ADJ,
        SENTIMENT_TEST_ITEMS,
        SENTIMENT_TRAIN_ADJ,
        SENTIMENT_TRAIN_ITEMS,
        sentiment_pairs,
    )
    from repe.demo import NEGATIVE_WORDS, POSITIVE_WORDS
    from repe.eval import kl_cost, token_set_logodds
    from repe.neutral import neutral_paragraphs

    model, tok = load_model("smollm2")
    train = sentiment_pairs(SENTIMENT_TRAIN_ITEMS, SENTIMENT_TRAIN_ADJ)
    test = sentiment_pairs(SENTIMENT_TEST_ITEMS, SENTIMENT_TEST_ADJ)
    v = fit_reading_vector(model, tok, train, layers="12-20", val_pairs=test, split=0.0, n_boot=200)
    aurocs = {int(k): r["auroc"] for k, r in v.meta["report"].items()}
    assert max(aurocs.values()) >= 0.95, aurocs

    layers = list(range(14, 21))
    prompt = [Stimulus(user="How was the movie?", prefix="The movie was")]
    lo = {}
    for c in (-0.25, 0.0, 0.25):
        spec = SteerSpec(v, coeff=c, layers=layers, units="diff")
        lo[c] = token_set_logodds(
            model,
            tok,
            prompt,
            POSITIVE_WORDS,
            NEGATIVE_WORDS,
            lambda spec=spec: steer(model, [spec]),
        )["logodds"]
    assert lo[-0.25] < lo[0.0] < lo[0.25], lo
    spec = SteerSpec(v, coeff=0.25, layers=layers, units="diff")
    cost = kl_cost(model, tok, neutral_paragraphs(), lambda: steer(model, [spec]), max_tokens=512)
    assert 0.0 < cost.kl <= 0.2, cost

    # saved -> loaded -> applied gives identical logits on the real model
    w = load_vector(save_vector(v, tmp_path / "v.safetensors"), model)
    import torch

    ids = torch.tensor([tok("The movie was", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        with steer(model, [SteerSpec(v, coeff=0.5, layers=layers, units="diff")]):
            a = model(input_ids=ids).logits
        with steer(model, [SteerSpec(w, coeff=0.5, layers=layers, units="diff")]):
            b = model(input_ids=ids).logits
    assert torch.equal(a, b)
