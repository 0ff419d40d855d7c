"""Pure-Python pieces of the LLM layer: retry maths, cache keys, meter, buckets, JSON parsing."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lm_kit.llm import GenParams, Message, PriceTable, Usage, UsageMeter, stage
from lm_kit.llm.cache import cache_key, normalise_base_url
from lm_kit.llm.jsonout import extract_json_object, parse_and_validate
from lm_kit.llm.ratelimit import TokenBucket
from lm_kit.llm.retry import RetryPolicy, retry_after_seconds, should_retry_status


def test_retry_after_forms():
    assert retry_after_seconds({"Retry-After": "7"}) == 7
    assert retry_after_seconds({"retry-after": "1.5"}) == 1.5
    assert retry_after_seconds({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 42, usegmt=True)
    assert retry_after_seconds({"Retry-After": date}, now=now) == pytest.approx(42)
    assert retry_after_seconds({"Retry-After": "soon-ish"}) is None
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_status_classification():
    for s in (400, 401, 403, 404, 422):
        assert not should_retry_status(s)
    for s in (408, 409, 429, 500, 502, 503, 504):
        assert should_retry_status(s)
    assert should_retry_status(400, {"x-should-retry": "true"})
    assert not should_retry_status(503, {"x-should-retry": "false"})


@given(st.integers(0, 20), st.integers(0, 2**32 - 1))
def test_full_jitter_bounds(attempt, seed):
    p = RetryPolicy(base=0.5, cap=30)
    d = p.backoff(attempt, random.Random(seed))
    assert 0 <= d <= min(30, 0.5 * 2**attempt)


def test_cache_key_ignores_url_cosmetics_but_not_host_or_sample():
    base = dict(
        endpoint="chat",
        model="m",
        params={"sample_index": 0},
        messages=[{"role": "user", "content": "x"}],
    )
    k = cache_key(base_url="http://LocalHost:8000/v1/", **base)
    assert k == cache_key(base_url="http://localhost:8000/v1", **base)
    assert k != cache_key(base_url="http://localhost:8001/v1", **base)
    assert k != cache_key(
        base_url="http://localhost:8000/v1", **{**base, "params": {"sample_index": 1}}
    )
    assert normalise_base_url("HTTPS://Api.Example.com:443/v1/") == "https://api.example.com/v1"


def test_price_table_and_meter():
    table = PriceTable({"gpt-4o*": {"input": 2.5, "output": 10, "cached_input": 1.25}})
    # 1000 prompt tokens, 400 of them cached, 100 output: hand-computed
    assert table.cost("gpt-4o-mini", 1000, 100, 400) == pytest.approx(
        (600 * 2.5 + 400 * 1.25 + 100 * 10) / 1e6
    )
    assert table.cost("llama", 10, 10) is None
    m = UsageMeter(table)
    with stage("a"):
        m.record("gpt-4o", prompt_tokens=10, completion_tokens=5, retries=2)
        m.record("gpt-4o", prompt_tokens=10, completion_tokens=5, from_cache=True)
    m.record("llama", prompt_tokens=3, completion_tokens=1)
    a = m.total(stage="a")
    assert (a.requests, a.cache_hits, a.retries, a.prompt_tokens, a.saved_prompt_tokens) == (
        2,
        1,
        2,
        10,
        10,
    )
    assert a.cost_usd == pytest.approx((10 * 2.5 + 5 * 10) / 1e6)
    assert m.total().cost_usd is None  # llama has no price: unknown, not 0
    assert m.total(stage="default").prompt_tokens == 3


def test_stage_is_per_task():
    m = UsageMeter()

    async def worker(name):
        with stage(name):
            await asyncio.sleep(0.01)
            m.record("x", prompt_tokens=1)

    async def go():
        await asyncio.gather(worker("s1"), worker("s2"), worker("s1"))

    asyncio.run(go())
    assert m.total(stage="s1").requests == 2 and m.total(stage="s2").requests == 1


def test_usage_add_propagates_unknown_cost():
    assert (Usage(cost_usd=1.0) + Usage(cost_usd=None)).cost_usd is None
    assert (Usage(requests=1, cost_usd=1.0) + Usage(requests=2, cost_usd=0.5)).requests == 3


def test_token_bucket_waits_for_refill():
    async def go():
        b = TokenBucket(600)  # 10 per second, capacity 600
        await b.acquire(600)
        t0 = time.perf_counter()
        await b.acquire(3)
        return time.perf_counter() - t0

    assert 0.25 <= asyncio.run(go()) < 1.0


def test_genparams_validation_and_group_key():
    assert GenParams(stop="x").stop == ("x",)
    assert GenParams(top_logprobs=3).logprobs is True
    with pytest.raises(ValueError, match="top_logprobs"):
        GenParams(top_logprobs=21)
    with pytest.raises(ValueError, match="temperature"):
        GenParams(temperature=-1)
    assert GenParams(sample_index=0).group_key() == GenParams(sample_index=5).group_key()
    assert GenParams(max_tokens=3).group_key() != GenParams(max_tokens=4).group_key()
    with pytest.raises(ValueError, match="role"):
        Message("robot", "hi")  # type: ignore[arg-type]


def test_json_extraction():
    assert extract_json_object('x {"a": "}"} y {"b": 1}') == '{"a": "}"}'
    assert extract_json_object('{broken {"ok": true}') == '{"ok": true}'
    assert extract_json_object("none") is None
    with pytest.raises(ValueError, match="missing required key 'n'"):
        parse_and_validate("{}", {"type": "object", "required": ["n"]})
    with pytest.raises(ValueError, match="expected integer"):
        parse_and_validate(
            '{"n": true}', {"type": "object", "properties": {"n": {"type": "integer"}}}
        )
