"""TransformersClient on a tiny random Llama: batching, greedy parity, logprobs, seeds, stops."""

from __future__ import annotations

import asyncio

import pytest
import torch
from lm_kit.llm import GenParams, LLMClient, Message, make_client, stage
from lm_kit.llm.local import TransformersClient
from lm_kit.tiny import tiny_model, tiny_tokenizer

PROMPTS = [
    "The capital of France",
    "A quick brown fox jumps over the lazy dog while",
    "Rain",
    "Numbers like 1, 2, 3",
    "Hooks capture activations at each layer; edits",
    "She said",
]
TEMPLATE = "<s>{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:"


@pytest.fixture(scope="module")
def tiny():
    model = tiny_model("llama", d=64, layers=2, vocab=512, seed=0)
    tok = tiny_tokenizer()
    return model, tok


def run(coro):
    return asyncio.run(coro)


def reference_greedy(model, tok, prompt: str, n: int) -> list[int]:
    """Unpadded, one prompt at a time, plain transformers generate."""
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    gen = out[0, ids.shape[1] :].tolist()
    return gen[: gen.index(tok.eos_token_id)] if tok.eos_token_id in gen else gen


def test_is_an_llmclient(tiny):
    assert isinstance(TransformersClient(*tiny), LLMClient)


def test_batched_left_padded_greedy_equals_one_by_one(tiny):
    model, tok = tiny
    client = TransformersClient(model, tok, max_batch=4, window_ms=50)
    params = GenParams(max_tokens=8)

    async def go():
        try:
            with stage("gen"):
                return await client.map(PROMPTS, params=params)
        finally:
            await client.aclose()

    outs = run(go())
    for prompt, out in zip(PROMPTS, outs, strict=True):
        ref = reference_greedy(model, tok, prompt, 8)
        assert out.raw["token_ids"] == ref, prompt
        assert out.text == tok.decode(ref, skip_special_tokens=True)
        assert out.finish_reason == ("length" if len(ref) == 8 else "stop")
        assert out.prompt_tokens == len(tok(prompt)["input_ids"])
    assert client.batches_run == 2  # 6 prompts, max_batch 4, one window
    u = client.usage.total(stage="gen")
    assert u.requests == 6 and u.completion_tokens == sum(o.completion_tokens for o in outs)


def test_logprobs_match_an_independent_forward(tiny):
    model, tok = tiny
    client = TransformersClient(model, tok)
    prompt = PROMPTS[1]
    out = run(client.complete(prompt, GenParams(max_tokens=6, logprobs=True, top_logprobs=5)))
    run(client.aclose())
    prompt_ids = tok(prompt)["input_ids"]
    gen = out.raw["token_ids"]
    full = torch.tensor([prompt_ids + gen])
    with torch.no_grad():
        logp = model(full).logits[0].log_softmax(-1)
    for i, tl in enumerate(out.logprobs):
        pos = len(prompt_ids) - 1 + i
        assert tl.token_id == gen[i]
        assert tl.logprob == pytest.approx(logp[pos, gen[i]].item(), abs=1e-4)
        top_vals = sorted(tl.top.values(), reverse=True)
        assert top_vals[0] == pytest.approx(logp[pos].max().item(), abs=1e-4)
        assert len(tl.top) <= 5
        assert tl.logprob == pytest.approx(top_vals[0], abs=1e-4)  # greedy picks the argmax


def test_sampling_is_seeded_per_request_not_per_batch(tiny):
    model, tok = tiny
    p = GenParams(temperature=1.0, max_tokens=10, seed=7)

    async def alone():
        c = TransformersClient(model, tok)
        try:
            return (await c.complete("Rain", p)).raw["token_ids"]
        finally:
            await c.aclose()

    async def in_batch():
        c = TransformersClient(model, tok, window_ms=50)
        try:
            outs = await asyncio.gather(
                *[c.complete(x, p) for x in ["Rain", "She said", "Numbers"]]
            )
            other = await c.complete("Rain", p.replace(sample_index=1))
            return outs[0].raw["token_ids"], other.raw["token_ids"], c.batches_run
        finally:
            await c.aclose()

    a = run(alone())
    b, other, batches = run(in_batch())
    assert a == b  # same request, same sample, whatever shares the batch
    assert batches == 2
    assert other != a  # another sample_index is another sample (10 tokens from 512: no tie)


def test_stop_string_is_cut(tiny):
    model, tok = tiny
    client = TransformersClient(model, tok)
    full = run(client.complete(PROMPTS[0], GenParams(max_tokens=12))).text
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    assert stop.strip(), f"need a visible stop string, got {full!r}"
    out = run(client.complete(PROMPTS[0], GenParams(max_tokens=12, stop=[stop])))
    run(client.aclose())
    assert out.text == full[: full.find(stop)]
    assert out.finish_reason == "stop"


def test_chat_uses_the_template(tiny):
    model, tok = tiny
    client = TransformersClient(model, tok, chat_template=TEMPLATE)
    msgs = [Message.system("be brief"), Message.user("capital of France?")]

    async def go():
        try:
            a = await client.chat(msgs, GenParams(max_tokens=6))
            rendered = "system: be brief\nuser: capital of France?\nassistant:"
            b = await client.complete(rendered, GenParams(max_tokens=6))  # BOS added by tokenizer
            return a, b
        finally:
            await client.aclose()

    a, b = run(go())
    assert a.raw["token_ids"] == b.raw["token_ids"]
    with pytest.raises(ValueError, match="chat_template"):
        run(TransformersClient(model, tok).chat("hi"))


def test_cancelled_request_does_not_break_the_worker(tiny):
    model, tok = tiny
    client = TransformersClient(model, tok, window_ms=100)

    async def go():
        t = asyncio.create_task(client.complete("Rain", GenParams(max_tokens=4)))
        await asyncio.sleep(0.01)
        t.cancel()
        out = await client.complete("She said", GenParams(max_tokens=4))
        await client.aclose()
        return t, out

    t, out = run(go())
    assert t.cancelled() and out.finish_reason in ("stop", "length")
    assert client.batches_run == 1  # the cancelled job never reached generate


def test_make_client_local_folder_and_cache(tiny, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    client = make_client(f"local:{tmp_path / 'm'}", cache_dir=tmp_path / "cache")

    async def go():
        try:
            a = await client.complete("Rain", GenParams(max_tokens=5))
            b = await client.complete("Rain", GenParams(max_tokens=5))
            return a, b
        finally:
            await client.aclose()

    a, b = run(go())
    assert a.raw["token_ids"] == reference_greedy(model, tok, "Rain", 5)
    assert b.from_cache and b.text == a.text and client.usage.total().cache_hits == 1


@pytest.mark.slow
def test_smollm2_knows_paris():
    pytest.importorskip("lm_kit.loading")
    client = make_client("local:smollm2")

    async def go():
        try:
            return await client.complete("The capital of France is", GenParams(max_tokens=8))
        finally:
            await client.aclose()

    out = run(go())
    assert "Paris" in out.text


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_http_client_replaying_local_answer_gives_the_same_completion(tiny, endpoint, monkeypatch):
    from lm_kit.llm.openai_compat import OpenAICompatClient
    from lm_kit.testing.fake_openai import FakeOpenAIServer, Rule, response_from_completion

    model, tok = tiny
    monkeypatch.delenv("LMKIT_REPLAY_KEY", raising=False)
    params = GenParams(max_tokens=6, logprobs=True, top_logprobs=3)
    local = TransformersClient(model, tok, chat_template=TEMPLATE, name="tiny")

    async def ask(client):
        try:
            if endpoint == "chat":
                return await client.chat("The capital of France is", params)
            return await client.complete("The capital of France is", params)
        finally:
            await client.aclose()

    a = run(ask(local))
    with FakeOpenAIServer([Rule(reply=response_from_completion(a, endpoint))]) as s:
        b = run(ask(OpenAICompatClient(s.url, "tiny", api_key_env="LMKIT_REPLAY_KEY")))
    keep = ("text", "finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens", "model")
    assert {k: getattr(a, k) for k in keep} == {k: getattr(b, k) for k in keep}
    assert [(t.token, t.logprob, t.top) for t in a.logprobs] == [
        (t.token, t.logprob, t.top) for t in b.logprobs
    ]
