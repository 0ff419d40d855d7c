"""OpenAICompatClient driven through the real openai SDK against FakeOpenAIServer."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from pathlib import Path

import pytest
from lm_kit.llm import (
    CacheMiss,
    GenParams,
    JSONOutputError,
    LLMHTTPError,
    LogprobsUnavailable,
    Message,
    MissingAPIKey,
    RateLimited,
    Request,
    RetriesExhausted,
    stage,
)
from lm_kit.llm.openai_compat import OpenAICompatClient
from lm_kit.llm.retry import RetryPolicy
from lm_kit.testing.fake_openai import FakeOpenAIServer, Fault, Rule
from pydantic import BaseModel

FAST = RetryPolicy(max_attempts=6, base=0.001, cap=0.01)
SECRET = "sk-test-SECRET-value-1234567890"


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def server():
    with FakeOpenAIServer() as s:
        yield s


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("LMKIT_TEST_KEY", SECRET)


def client_for(server, **kw) -> OpenAICompatClient:
    kw.setdefault("retry", FAST)
    kw.setdefault("api_key_env", "LMKIT_TEST_KEY")
    return OpenAICompatClient(server.url, kw.pop("model", "fake-model"), **kw)


async def _one(client, text="hello there", params=None):
    try:
        return await client.chat([Message.user(text)], params)
    finally:
        await client.aclose()


# -- basics and normalisation -----------------------------------------------------------------


def test_chat_echo_usage_and_auth_header(server):
    out = run(_one(client_for(server), "hello there"))
    assert out.text == "echo: hello there"
    assert out.finish_reason == "stop"
    assert out.completion_tokens == 3  # "echo:", " hello", " there"
    assert out.prompt_tokens > 0 and out.attempts == 1 and not out.from_cache
    (req,) = server.completions_requests()
    assert req.headers["authorization"] == f"Bearer {SECRET}"
    assert req.body["model"] == "fake-model" and req.body["temperature"] == 0.0


def test_chat_logprobs_normalised(server):
    out = run(_one(client_for(server), "a b", GenParams(logprobs=True, top_logprobs=3)))
    toks = [t.token for t in out.logprobs]
    assert "".join(toks) == out.text == "echo: a b"
    assert [t.logprob for t in out.logprobs] == pytest.approx([-0.05, -0.10, -0.15])
    first = out.logprobs[0]
    assert list(first.top) == ["echo:", "<alt1>", "<alt2>"]
    assert first.top["<alt1>"] == pytest.approx(-1.05)


def test_completions_logprobs_normalised_and_length(server):
    async def go():
        c = client_for(server)
        try:
            return await c.complete(
                "one two three", GenParams(max_tokens=2, logprobs=True, top_logprobs=2)
            )
        finally:
            await c.aclose()

    out = run(go())
    assert out.text == "echo: one" and out.finish_reason == "length"
    assert [t.token for t in out.logprobs] == ["echo:", " one"]
    assert out.logprobs[1].top == pytest.approx({" one": -0.1, "<alt1>": -1.1})
    assert server.completions_requests()[0].body["logprobs"] == 2


def test_missing_logprobs_raise():
    with (
        FakeOpenAIServer([Rule(logprobs=False)]) as s,
        pytest.raises(LogprobsUnavailable, match="logprobs"),
    ):
        run(_one(client_for(s), "x", GenParams(logprobs=True)))


# -- secrets ----------------------------------------------------------------------------------


def test_missing_key_names_variable_not_value(monkeypatch):
    monkeypatch.delenv("LMKIT_ABSENT_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="LMKIT_ABSENT_KEY"):
        OpenAICompatClient("https://api.example.com/v1", "m", api_key_env="LMKIT_ABSENT_KEY")


def test_loopback_accepts_empty(server, monkeypatch):
    monkeypatch.delenv("LMKIT_ABSENT_KEY", raising=False)
    out = run(_one(client_for(server, api_key_env="LMKIT_ABSENT_KEY")))
    assert out.text.startswith("echo:")
    assert server.completions_requests()[0].headers["authorization"] == "Bearer EMPTY"


def test_repr_and_disk_never_hold_the_key(server, tmp_path):
    c = client_for(server, cache_dir=tmp_path / "cache", audit_path=tmp_path / "audit.jsonl")
    assert SECRET not in repr(c) and SECRET not in str(vars(c).get("_meter"))

    async def go():
        with stage("explain"):
            await c.chat("hi", GenParams(seed=3))
            await c.complete("hi")
        await c.aclose()

    run(go())
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 3  # two cache entries + the audit log
    for p in files:
        assert SECRET not in p.read_text()
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in lines] == ["explain", "explain"]
    assert {r["status"] for r in lines} == {"ok"}
    assert all("messages" not in r and "prompt" not in r for r in lines)


# -- retries ---------------------------------------------------------------------------------


def test_429_retry_after_one_second_is_honoured():
    with FakeOpenAIServer([Rule(faults=[Fault(429, retry_after="1")])]) as s:
        t0 = time.perf_counter()
        out = run(_one(client_for(s)))
        elapsed = time.perf_counter() - t0
        reqs = s.completions_requests()
    assert out.attempts == 2 and len(reqs) == 2
    assert reqs[1].t_start - reqs[0].t_end >= 0.95
    assert elapsed >= 1.0


def test_retry_after_ms_is_honoured():
    with FakeOpenAIServer(
        [Rule(faults=[Fault(429, retry_after_ms="300", retry_after="100")])]
    ) as s:
        out = run(_one(client_for(s)))
        reqs = s.completions_requests()
    assert out.attempts == 2
    gap = reqs[1].t_start - reqs[0].t_end
    assert 0.28 <= gap < 5  # ms header wins over the 100 s one


def test_retry_after_3600_raises_rate_limited_at_once():
    with FakeOpenAIServer([Rule(faults=[Fault(429, retry_after="3600", times=None)])]) as s:
        t0 = time.perf_counter()
        with pytest.raises(RateLimited, match="3600") as ei:
            run(_one(client_for(s)))
        assert time.perf_counter() - t0 < 2.0
        assert len(s.completions_requests()) == 1
    assert ei.value.wait_s == pytest.approx(3600)


def test_retry_after_http_date_far_away_is_rate_limited():
    when = email.utils.formatdate(time.time() + 7200, usegmt=True)
    with (
        FakeOpenAIServer([Rule(faults=[Fault(503, retry_after=when, times=None)])]) as s,
        pytest.raises(RateLimited) as ei,
    ):
        run(_one(client_for(s)))
    assert 7100 < ei.value.wait_s <= 7200


@pytest.mark.parametrize("status", [500, 503])
def test_persistent_5xx_fails_after_six_attempts(status):
    with FakeOpenAIServer([Rule(faults=[Fault(status, times=None)])]) as s:
        with pytest.raises(RetriesExhausted, match="6 attempts") as ei:
            run(_one(client_for(s)))
        assert len(s.completions_requests()) == 6
    assert ei.value.attempts == 6 and str(status) in str(ei.value)


def test_transient_500_then_success_counts_retries(server):
    server.rules = [Rule(faults=[Fault(500, times=2)])]
    c = client_for(server)
    out = run(_one(c))
    assert out.attempts == 3 and len(server.completions_requests()) == 3
    assert c.usage.total().retries == 2 and c.usage.total().failures == 0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status):
    with FakeOpenAIServer([Rule(faults=[Fault(status, times=None)])]) as s:
        with pytest.raises(LLMHTTPError) as ei:
            run(_one(client_for(s)))
        assert len(s.completions_requests()) == 1
    assert ei.value.status == status


def test_wrong_key_gives_401_without_retry():
    with FakeOpenAIServer(api_key="the-right-key") as s:
        with pytest.raises(LLMHTTPError, match="401") as ei:
            run(_one(client_for(s)))
        assert len(s.completions_requests()) == 1
    assert SECRET not in str(ei.value)


def test_read_timeout_retried_then_succeeds():
    with FakeOpenAIServer([Rule(faults=[Fault(delay_s=1.5)])]) as s:
        out = run(_one(client_for(s, timeout=0.3)))
        assert out.attempts == 2 and len(s.completions_requests()) == 2


def test_read_timeout_forever_raises_timeout_error():
    with FakeOpenAIServer([Rule(faults=[Fault(delay_s=3, times=None)])]) as s:
        policy = RetryPolicy(max_attempts=3, base=0.001, cap=0.01)
        t0 = time.perf_counter()
        with pytest.raises(TimeoutError, match="3 attempts"):
            run(_one(client_for(s, timeout=0.25, retry=policy)))
        assert time.perf_counter() - t0 < 2.5
        assert len(s.completions_requests()) == 3


def test_malformed_body_retried_then_succeeds(server):
    server.rules = [Rule(faults=[Fault(malformed=True)])]
    out = run(_one(client_for(server)))
    assert out.attempts == 2 and out.text.startswith("echo:")


def test_malformed_forever_ends_in_clear_error(server):
    server.rules = [Rule(faults=[Fault(malformed=True, times=None)])]
    with pytest.raises(RetriesExhausted, match="malformed"):
        run(_one(client_for(server)))
    assert len(server.completions_requests()) == 6


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "body",
    [
        "<html><body>502 Bad Gateway</body></html>",  # not JSON at all
        {"object": "error", "detail": "upstream overloaded"},  # JSON, but no choices
        {"choices": []},  # empty choices
        {"choices": [{"index": 0}]},  # a choice without a message
    ],
    ids=["html", "no-choices", "empty-choices", "no-message"],
)
def test_garbage_200_forever_ends_in_clear_error_after_the_budget(body):
    """A server that answers 200 with garbage: retried, then one clear error, never a hang."""
    with FakeOpenAIServer([Rule(faults=[Fault(200, body=body, times=None)])]) as s:
        t0 = time.perf_counter()
        with pytest.raises(RetriesExhausted, match=r"6 attempts.*malformed") as ei:
            run(_one(client_for(s)))
        assert time.perf_counter() - t0 < 10
        assert len(s.completions_requests()) == 6
    assert ei.value.attempts == 6


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("retry_after", "retry_after_ms"), [(None, None), ("0", None), (None, "50")]
)
def test_429_forever_ends_in_retries_exhausted_with_the_default_policy(retry_after, retry_after_ms):
    """429 on every request: the default budget (6 attempts) runs out with a clear error."""
    with FakeOpenAIServer(
        [
            Rule(
                faults=[
                    Fault(429, retry_after=retry_after, retry_after_ms=retry_after_ms, times=None)
                ]
            )
        ]
    ) as s:
        # the default RetryPolicy, except a smaller backoff when the server gives no Retry-After
        policy = RetryPolicy() if (retry_after or retry_after_ms) else FAST
        t0 = time.perf_counter()
        with pytest.raises(RetriesExhausted, match=r"6 attempts.*429") as ei:
            run(_one(client_for(s, retry=policy)))
        assert time.perf_counter() - t0 < 10
        reqs = s.completions_requests()
    assert len(reqs) == 6 and ei.value.attempts == 6
    if retry_after_ms:  # the server's wait is honoured between attempts
        gaps = [b.t_start - a.t_end for a, b in zip(reqs, reqs[1:], strict=False)]
        assert min(gaps) >= 0.045


def test_dropped_connection_is_retried(server):
    server.rules = [Rule(faults=[Fault(drop=True, times=2)])]
    out = run(_one(client_for(server)))
    assert out.attempts == 3


# -- concurrency ------------------------------------------------------------------------------


def test_peak_concurrency_respects_limit():
    with FakeOpenAIServer(latency_s=0.05) as s:
        c = client_for(s, max_concurrency=3)

        async def go():
            try:
                return await c.map([f"q{i}" for i in range(12)], params=None)
            finally:
                await c.aclose()

        outs = run(go())
        assert [o.text for o in outs] == [
            f"echo: q{i}" for i in range(12)
        ]  # completions, order kept
        assert s.peak_concurrency == 3


def test_identical_in_flight_requests_share_one_call():
    with FakeOpenAIServer(latency_s=0.1) as s:
        c = client_for(s)

        async def go():
            try:
                return await asyncio.gather(*[c.chat("same") for _ in range(5)])
            finally:
                await c.aclose()

        outs = run(go())
        assert len(s.completions_requests()) == 1
    assert {o.text for o in outs} == {"echo: same"}
    assert sum(not o.from_cache for o in outs) == 1


def test_cancelled_task_releases_semaphore_and_writes_nothing(tmp_path):
    rules = [Rule(pattern="slow", delay_s=2.0)]
    with FakeOpenAIServer(rules) as s:
        c = client_for(
            s, max_concurrency=1, cache_dir=tmp_path / "c", audit_path=tmp_path / "a.jsonl"
        )

        async def go():
            t = asyncio.create_task(c.chat("slow one"))
            await asyncio.sleep(0.2)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            t0 = time.perf_counter()
            out = await asyncio.wait_for(c.chat("fast one"), timeout=1.5)
            await c.aclose()
            return out, time.perf_counter() - t0

        out, dt = run(go())
    assert out.text == "echo: fast one" and dt < 1.5
    entries = list((tmp_path / "c").rglob("*.json"))
    assert len(entries) == 1  # only the fast request
    audit = (tmp_path / "a.jsonl").read_text().splitlines()
    assert len(audit) == 1 and json.loads(audit[0])["status"] == "ok"


# -- cache ------------------------------------------------------------------------------------


def test_cache_hit_on_rerun_and_modes(server, tmp_path):
    reqs = [Request.chat(f"q{i}", GenParams(sample_index=i % 2)) for i in range(4)]

    async def go(mode):
        c = client_for(server, cache_dir=tmp_path, cache_mode=mode)
        try:
            return await c.map(reqs), c.usage.total()
        finally:
            await c.aclose()

    first, u1 = run(go("use"))
    n = len(server.completions_requests())
    assert n == 4 and u1.cache_hits == 0
    second, u2 = run(go("use"))
    assert len(server.completions_requests()) == n  # nothing new reached the server
    assert all(o.from_cache and o.attempts == 0 for o in second)
    assert [o.text for o in second] == [o.text for o in first]
    assert u2.cache_hits == 4 and u2.prompt_tokens == 0
    assert u2.saved_completion_tokens == sum(o.completion_tokens for o in first)
    run(go("refresh"))
    assert len(server.completions_requests()) == n + 4
    only, _ = run(go("only"))
    assert all(o.from_cache for o in only)
    with pytest.raises(CacheMiss, match="cache_mode='only'"):
        run(go_only_new(server, tmp_path))


async def go_only_new(server, tmp_path):
    c = client_for(server, cache_dir=tmp_path, cache_mode="only")
    try:
        return await c.chat("never asked before")
    finally:
        await c.aclose()


def test_sample_index_and_base_url_separate_cache_entries(server, tmp_path):
    async def go():
        c = client_for(server, cache_dir=tmp_path)
        try:
            a = await c.chat("same", GenParams(sample_index=0))
            b = await c.chat("same", GenParams(sample_index=1))
            return a, b
        finally:
            await c.aclose()

    a, b = run(go())
    assert not a.from_cache and not b.from_cache
    assert len(list(tmp_path.rglob("*.json"))) == 2
    with FakeOpenAIServer() as other:  # same model name, another server: no hit
        c2 = client_for(other, cache_dir=tmp_path)
        out = run(_one(c2, "same"))
        assert not out.from_cache and len(other.completions_requests()) == 1


def test_corrupt_entry_is_miss_with_warning(server, tmp_path, caplog):
    run(_one(client_for(server, cache_dir=tmp_path), "x"))
    (entry,) = list(tmp_path.rglob("*.json"))
    entry.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="lm_kit.llm.cache"):
        out = run(_one(client_for(server, cache_dir=tmp_path), "x"))
    assert not out.from_cache and "corrupt cache entry" in caplog.text
    assert json.loads(entry.read_text())["response"]["text"] == "echo: x"  # rewritten


def test_errors_are_never_cached(tmp_path):
    with (
        FakeOpenAIServer([Rule(faults=[Fault(503, times=None)])]) as s,
        pytest.raises(RetriesExhausted),
    ):
        run(_one(client_for(s, cache_dir=tmp_path)))
    assert list(Path(tmp_path).rglob("*.json")) == []


# -- accounting --------------------------------------------------------------------------------


def test_usage_per_stage_and_cost(server):
    prices = {"fake-model": {"input": 2.0, "output": 10.0}}
    c = client_for(server, prices=prices)

    async def go():
        with stage("explain"):
            a = await c.chat("one")
        with stage("score"):
            b = await c.chat("two"), await c.chat("three")
        await c.aclose()
        return a, b

    a, (b1, b2) = run(go())
    ex, sc = c.usage.total(stage="explain"), c.usage.total(stage="score")
    assert ex.requests == 1 and sc.requests == 2
    assert sc.prompt_tokens == b1.prompt_tokens + b2.prompt_tokens
    expected = (a.prompt_tokens * 2.0 + a.completion_tokens * 10.0) / 1e6
    assert ex.cost_usd == pytest.approx(expected)
    c_unknown = client_for(server, model="unpriced", prices=prices)
    run(_one(c_unknown))
    assert c_unknown.usage.total().cost_usd is None


# -- JSON outputs ------------------------------------------------------------------------------


class Verdict(BaseModel):
    label: str
    score: float


def test_json_schema_output_parsed_from_prose(server):
    server.rules = [Rule(reply='Sure! {"label": "cat", "score": 0.5} hope that helps')]
    out = run(_one(client_for(server), "judge", GenParams(response_format=Verdict)))
    assert out.parsed == Verdict(label="cat", score=0.5)
    rf = server.completions_requests()[0].body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True


def test_json_schema_400_falls_back_to_json_object(server):
    def rejects_schema(body):
        return body.get("response_format", {}).get("type") == "json_schema"

    server.rules = [
        Rule(when=rejects_schema, faults=[Fault(400, times=None)]),
        Rule(reply='{"label": "dog", "score": 1}'),
    ]
    out = run(_one(client_for(server), "judge", GenParams(response_format=Verdict)))
    assert out.parsed.label == "dog"
    bodies = [r.body for r in server.completions_requests()]
    assert [b["response_format"]["type"] for b in bodies] == ["json_schema", "json_object"]
    assert "JSON schema" in bodies[1]["messages"][0]["content"]


def test_invalid_json_is_reasked_then_succeeds(server):
    replies = iter(['{"label": "x"}', "no json at all", '{"label": "ok", "score": 2}'])
    server.rules = [Rule(reply=lambda body: next(replies))]
    out = run(_one(client_for(server), "judge", GenParams(response_format=Verdict)))
    assert out.parsed == Verdict(label="ok", score=2)
    assert len(server.completions_requests()) == 3


def test_invalid_json_forever_raises(server):
    server.rules = [Rule(reply='{"label": 3}')]
    with pytest.raises(JSONOutputError, match="3 tries") as ei:
        run(_one(client_for(server), "judge", GenParams(response_format=Verdict)))
    assert ei.value.raw == '{"label": 3}'


def test_json_cut_off_by_length_raises(server):
    server.rules = [Rule(reply='{"label": "a very long label", "score": 1}')]
    with pytest.raises(JSONOutputError, match="finish_reason='length'"):
        run(_one(client_for(server), "judge", GenParams(response_format=Verdict, max_tokens=2)))


def test_dict_schema_validation(server):
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    server.rules = [Rule(reply='{"n": 4}')]
    out = run(_one(client_for(server), "count", GenParams(response_format=schema)))
    assert out.parsed == {"n": 4}


# A response written by hand in the documented OpenAI chat shape, extra fields included.
OPENAI_SHAPED_CHAT = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1732000000,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_0ba0d124f1",
    "service_tier": "default",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Paris",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": {
                "content": [
                    {
                        "token": "Paris",
                        "logprob": -0.0001,
                        "bytes": [80, 97, 114, 105, 115],
                        "top_logprobs": [
                            {
                                "token": "Paris",
                                "logprob": -0.0001,
                                "bytes": [80, 97, 114, 105, 115],
                            },
                            {"token": "paris", "logprob": -9.5, "bytes": [112, 97, 114, 105, 115]},
                        ],
                    }
                ],
                "refusal": None,
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 1,
        "total_tokens": 1201,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "accepted_prediction_tokens": 0},
    },
}


def test_openai_shaped_response_and_cached_token_cost(server):
    server.rules = [Rule(reply=OPENAI_SHAPED_CHAT)]
    prices = {"fake-model": {"input": 0.15, "output": 0.6, "cached_input": 0.075}}
    c = client_for(server, prices=prices)
    out = run(_one(c, "capital?", GenParams(logprobs=True, top_logprobs=2)))
    assert out.text == "Paris" and out.model == "gpt-4o-mini-2024-07-18"
    assert (out.prompt_tokens, out.completion_tokens, out.cached_tokens) == (1200, 1, 1024)
    assert out.logprobs[0].top == {"Paris": -0.0001, "paris": -9.5}
    # 176 uncached + 1024 cached prompt tokens + 1 output token, by hand
    assert c.usage.total().cost_usd == pytest.approx((176 * 0.15 + 1024 * 0.075 + 1 * 0.6) / 1e6)


def test_x_should_retry_header_overrides_status(server):
    server.rules = [Rule(faults=[Fault(400, headers={"x-should-retry": "true"})])]
    out = run(_one(client_for(server)))
    assert out.attempts == 2


def test_client_survives_several_event_loops(server):
    c = client_for(server, max_concurrency=2)
    first = asyncio.run(c.map([[Message.user(f"a{i}")] for i in range(4)]))
    second = asyncio.run(c.map([[Message.user(f"b{i}")] for i in range(4)]))
    asyncio.run(c.aclose())
    assert [o.text for o in first + second] == [f"echo: a{i}" for i in range(4)] + [
        f"echo: b{i}" for i in range(4)
    ]


def test_rerun_after_kill_hits_cache_for_every_finished_request(tmp_path):
    rules = [Rule(pattern="slow", delay_s=5.0)]
    reqs = [[Message.user(f"fast {i}")] for i in range(5)] + [[Message.user("slow one")]]
    with FakeOpenAIServer(rules) as s:

        async def killed():
            c = client_for(s, cache_dir=tmp_path)
            job = asyncio.ensure_future(c.map(reqs))
            for _ in range(400):  # until the fast ones are cached; the slow one is in flight
                if len(list(tmp_path.rglob("*.json"))) == 5:
                    break
                await asyncio.sleep(0.02)
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job
            await c.aclose()

        run(killed())
        n_before = len(s.completions_requests())
        s.rules = []  # the server is fast now

        async def rerun():
            c = client_for(s, cache_dir=tmp_path)
            try:
                return await c.map(reqs)
            finally:
                await c.aclose()

        outs = run(rerun())
        assert len(s.completions_requests()) == n_before + 1  # only the unfinished one again
    assert [o.from_cache for o in outs] == [True] * 5 + [False]
