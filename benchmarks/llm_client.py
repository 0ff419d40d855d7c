"""LLM client overhead, throughput and cache speed against the in-process fake server.

Side by side in one process:
1. per-request overhead of ``OpenAICompatClient.chat`` over the raw ``openai.AsyncOpenAI`` call
   (sequential requests, distinct prompts, no cache; blocks interleaved to share the noise);
2. throughput with 50 ms server latency at concurrency c vs Little's law (c / 0.05 req/s,
   capped at 200 req/s), target >= 0.8x;
3. disk cache hits per second (target >= 5,000/s).

Usage: ``uv run python benchmarks/llm_client.py [--n 300]``. The server is a Python thread in
the same process, so absolute numbers include its cost and depend on machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

import openai
from lm_kit.llm import GenParams, Message
from lm_kit.llm.openai_compat import OpenAICompatClient
from lm_kit.testing.fake_openai import FakeOpenAIServer

os.environ.setdefault("LMKIT_BENCH_KEY", "EMPTY")


async def _raw_block(sdk: openai.AsyncOpenAI, prefix: str, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        r = await sdk.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": f"{prefix} {i}"}],
            max_tokens=16,
            temperature=0,
        )
        assert r.choices[0].message.content
    return time.perf_counter() - t0


async def _ours_block(client: OpenAICompatClient, prefix: str, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        r = await client.chat(f"{prefix} {i}", GenParams(max_tokens=16))
        assert r.text
    return time.perf_counter() - t0


async def overhead(url: str, n: int, blocks: int = 6) -> tuple[float, float]:
    sdk = openai.AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0)
    client = OpenAICompatClient(url, "fake-model", api_key_env="LMKIT_BENCH_KEY")
    raw_t = ours_t = 0.0
    await _raw_block(sdk, "warm", 20)
    await _ours_block(client, "warm", 20)
    per = max(n // blocks, 1)
    for b in range(blocks):
        raw_t += await _raw_block(sdk, f"raw{b}", per)
        ours_t += await _ours_block(client, f"ours{b}", per)
    await sdk.close()
    await client.aclose()
    return raw_t / (per * blocks) * 1e3, ours_t / (per * blocks) * 1e3


async def throughput(url: str, c: int, n: int) -> float:
    client = OpenAICompatClient(url, "fake-model", api_key_env="LMKIT_BENCH_KEY", max_concurrency=c)
    await client.map([f"warm {i}" for i in range(c)])
    t0 = time.perf_counter()
    await client.map([f"tp{c} {i}" for i in range(n)], params=GenParams(max_tokens=16))
    dt = time.perf_counter() - t0
    await client.aclose()
    return n / dt


async def cache_rate(url: str, n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        fill = OpenAICompatClient(url, "fake-model", api_key_env="LMKIT_BENCH_KEY", cache_dir=d)
        await fill.map([[Message.user(f"c {i}")] for i in range(n)])
        await fill.aclose()
        client = OpenAICompatClient(url, "fake-model", api_key_env="LMKIT_BENCH_KEY", cache_dir=d)
        t0 = time.perf_counter()
        for i in range(n):
            r = await client.chat(f"c {i}")
            assert r.from_cache
        seq = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        outs = await client.map([[Message.user(f"c {i}")] for i in range(n)])
        assert all(o.from_cache for o in outs)
        batched = n / (time.perf_counter() - t0)
        await client.aclose()
    return seq, batched


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="requests for the overhead test")
    args = ap.parse_args()
    with FakeOpenAIServer() as fast:
        raw_ms, ours_ms = asyncio.run(overhead(fast.url, args.n))
        hits_seq, hits_map = asyncio.run(cache_rate(fast.url, 500))
    print("1) per-request latency, sequential, fake server (no added latency)")
    print(f"   raw openai SDK      : {raw_ms:.3f} ms/request")
    print(
        f"   OpenAICompatClient  : {ours_ms:.3f} ms/request   ratio ours/raw: {ours_ms / raw_ms:.3f}"
    )
    ratios = {}
    with FakeOpenAIServer(latency_s=0.05) as slow:
        print("2) throughput at 50 ms server latency vs Little's law (c / 0.05 s, cap 200 req/s)")
        for c in (4, 8, 16):
            target = min(c / 0.05, 200.0)
            rate = asyncio.run(throughput(slow.url, c, n=max(4 * c, 40)))
            ratios[c] = rate / target
            print(
                f"   c={c:<3d} achieved {rate:7.1f} req/s   Little's law {target:6.1f}   ratio {ratios[c]:.3f}"
            )
    print("3) disk cache hits")
    print(
        f"   sequential chat(): {hits_seq:,.0f} hits/s   concurrent map(): {hits_map:,.0f} hits/s"
    )
    print("(in-process fake server; numbers depend on machine load)")
    print(f"overhead per request ms: {ours_ms - raw_ms:.3f}")
    print(f"throughput ratio vs Little's law at c=8: {ratios[8]:.3f}")
    print(f"cache hits per s: {hits_seq:.0f}")


if __name__ == "__main__":
    main()
