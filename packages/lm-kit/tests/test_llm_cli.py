"""`lm-kit llm-ping` and `lm-kit usage` against the fake server."""

from __future__ import annotations

import asyncio
import contextlib
import json

from lm_kit.cli import app
from lm_kit.llm import LLMHTTPError, stage
from lm_kit.llm.openai_compat import OpenAICompatClient
from lm_kit.testing.fake_openai import FakeOpenAIServer, Fault, Rule
from typer.testing import CliRunner

runner = CliRunner()


def test_llm_ping_prints_reply(monkeypatch):
    monkeypatch.delenv("LMKIT_PING_KEY", raising=False)
    with FakeOpenAIServer([Rule(reply="pong")], models=["fake-model", "other"]) as s:
        res = runner.invoke(
            app, ["llm-ping", s.url, "fake-model", "--api-key-env", "LMKIT_PING_KEY"]
        )
    assert res.exit_code == 0, res.output
    assert "'pong'" in res.output and "fake-model, other" in res.output


def test_llm_ping_fails_cleanly_on_401():
    with FakeOpenAIServer(api_key="right") as s:
        res = runner.invoke(app, ["llm-ping", s.url, "fake-model"])
    assert res.exit_code == 1 and "401" in res.output


def test_usage_sums_audit_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("LMKIT_USAGE_KEY", "sk-usage-secret")
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake-model": {"input": 1.0, "output": 2.0}}))
    with FakeOpenAIServer([Rule(pattern="bad", faults=[Fault(401, times=None)])]) as s:

        async def go():
            c = OpenAICompatClient(
                s.url,
                "fake-model",
                "LMKIT_USAGE_KEY",
                cache_dir=tmp_path / "c",
                audit_path=tmp_path / "logs" / "a.jsonl",
            )
            with stage("explain"):
                a = await c.chat("one two")
                b = await c.chat("one two")  # cache hit
            with contextlib.suppress(LLMHTTPError):
                await c.chat("bad request")
            await c.aclose()
            return a, b

        a, b = asyncio.run(go())
    res = runner.invoke(app, ["usage", str(tmp_path / "logs"), "--prices", str(prices), "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["stage"]: r for r in json.loads(res.output)}
    ex = rows["explain"]
    assert (ex["requests"], ex["cache_hits"], ex["prompt_tokens"]) == (2, 1, a.prompt_tokens)
    assert ex["cost_usd"] == (a.prompt_tokens * 1.0 + a.completion_tokens * 2.0) / 1e6
    assert rows["default"]["failures"] == 1
    assert "sk-usage-secret" not in (tmp_path / "logs" / "a.jsonl").read_text()
    table = runner.invoke(app, ["usage", str(tmp_path / "logs")])
    assert table.exit_code == 0 and "LLM usage" in table.output
    missing = runner.invoke(app, ["usage", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "does not exist" in " ".join(missing.output.split())
