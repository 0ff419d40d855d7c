import asyncio

from autointerp.explainers import get_explainer
from autointerp.explainers.prompts import explain_messages
from autointerp.testing import OracleClient, OracleEmbedder


def test_token_list_baseline(planted, examples):
    e = asyncio.run(get_explainer("token_list").explain(examples[0]))
    words = [w.strip('"') for w in e.text.removeprefix("the tokens ").split(", ")]
    assert len(words) == 5 and all(
        w in planted.vocab
        and w
        in {"cat", "dog", "horse", "rabbit", "tiger", "sheep", "mouse", "eagle", "whale", "fox"}
        for w in words
    )


def test_default_prompt_highlights_and_lists_activations(examples):
    ex = examples[0]
    msgs = explain_messages(ex.train[:3], ex.a_max)
    body = msgs[-1].content
    assert body.count("Example ") == 3 and "<<" in body and "Activations: (" in body
    assert len(msgs) == 1 + 2 * 3 + 1  # system + 3 few-shots + examples


def test_default_and_contrastive_on_planted(planted, examples):
    for name in ("default", "contrastive"):
        e = asyncio.run(get_explainer(name, client=OracleClient()).explain(examples[6]))
        assert e.text == planted.latents[6].true and e.prompt_tokens > 0 and e.prompt_hash


def test_best_of_k_chooses_on_validation_not_test(planted, examples):
    client = OracleClient()
    e = asyncio.run(
        get_explainer("best_of_k", client=client, k=4, embedder=OracleEmbedder()).explain(
            examples[6]
        )
    )
    assert len(e.candidates) == 4
    assert e.text == planted.latents[6].true  # odd samples name only one class and lose
    test_texts = {"".join(w.tokens).strip() for w in examples[6].test}
    for msgs in client.requests:
        for m in msgs:
            assert not any(t in m.content for t in list(test_texts)[:20])


def test_dead_latent_explanation_fails_cleanly(planted, examples):
    dead = next(p.index for p in planted.latents if p.kind == "dead")
    e = asyncio.run(get_explainer("default", client=OracleClient()).explain(examples[dead]))
    assert e.failed and "dead" in e.flags
