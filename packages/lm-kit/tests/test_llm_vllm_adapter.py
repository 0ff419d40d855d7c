"""VLLMOfflineClient's adapter logic, driven by a stand-in for vLLM's documented API shapes.

vLLM itself is not installed here (it needs Linux + CUDA); this checks what our code does:
one ``generate`` call per window, a fresh ``SamplingParams`` per request, logprob mapping.
"""

from __future__ import annotations

import asyncio
import sys
import types
from dataclasses import dataclass

import pytest
from lm_kit.llm import GenParams, LogprobsUnavailable


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


class SamplingParams:
    def __init__(self, **kw):
        self.kw = kw


class FakeLLM:
    def __init__(self, model=None, **kw):
        self.calls = []

    def get_tokenizer(self):
        raise AssertionError("not used in these tests")

    def generate(self, prompts, sampling_params=None, use_tqdm=False):
        self.calls.append((list(prompts), list(sampling_params)))
        outs = []
        for prompt, sp in zip(prompts, sampling_params, strict=True):
            n = sp.kw["max_tokens"]
            ids = list(range(10, 10 + n))
            lps = None
            if sp.kw.get("logprobs"):
                lps = [{t: Logprob(-0.5, 1, f"t{t}"), 99: Logprob(-1.5, 2, "alt")} for t in ids]
            comp = types.SimpleNamespace(
                text=" ".join(f"t{t}" for t in ids),
                token_ids=ids,
                logprobs=lps,
                finish_reason="length",
            )
            outs.append(
                types.SimpleNamespace(outputs=[comp], prompt_token_ids=list(range(len(prompt))))
            )
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = SamplingParams
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


def test_one_generate_call_with_fresh_params_per_request(fake_vllm):
    from lm_kit.llm.vllm_offline import VLLMOfflineClient

    client = VLLMOfflineClient("some/model", window_ms=30)
    params = [
        GenParams(max_tokens=2),
        GenParams(max_tokens=3, logprobs=True, top_logprobs=2),
        GenParams(max_tokens=1, temperature=0.7, seed=5),
    ]

    async def go():
        try:
            return await asyncio.gather(
                *[client.complete(f"p{i}", p) for i, p in enumerate(params)]
            )
        finally:
            await client.aclose()

    outs = asyncio.run(go())
    (call,) = client.llm.calls
    prompts, sps = call
    assert prompts == ["p0", "p1", "p2"]
    assert len({id(s) for s in sps}) == 3
    assert [s.kw["max_tokens"] for s in sps] == [2, 3, 1]
    assert sps[0].kw["seed"] is None and sps[2].kw["seed"] is not None
    assert "logprobs" not in sps[0].kw and sps[1].kw["logprobs"] == 2
    assert [o.completion_tokens for o in outs] == [2, 3, 1]
    lp = outs[1].logprobs
    assert [t.token for t in lp] == ["t10", "t11", "t12"] and lp[0].top == {
        "t10": -0.5,
        "alt": -1.5,
    }
    assert outs[0].logprobs is None and outs[0].prompt_tokens == 2


def test_missing_logprobs_raise(fake_vllm, monkeypatch):
    from lm_kit.llm.vllm_offline import VLLMOfflineClient

    client = VLLMOfflineClient("m", window_ms=0)
    monkeypatch.setattr(
        SamplingParams, "__init__", lambda self, **kw: setattr(self, "kw", {**kw, "logprobs": None})
    )
    with pytest.raises(LogprobsUnavailable):
        asyncio.run(client.complete("x", GenParams(max_tokens=1, logprobs=True)))


def test_missing_vllm_gives_install_hint(monkeypatch):
    from lm_kit.llm import vllm_offline

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match="needs vLLM"):
        vllm_offline.VLLMOfflineClient("m")
