"""TransformersClient batching vs sequential ``generate`` on SmolLM2 (CPU), side by side.

32 prompts, greedy, 16 new tokens. Baseline: one ``model.generate`` per prompt, unpadded.
lm-kit: ``TransformersClient.map`` (queue + window batching, left padding). Target >= 3x.
Also checks that the batched texts equal the sequential ones (greedy parity).

Usage: ``uv run python benchmarks/llm_local.py [--model smollm2] [--n 32] [--max-batch 16]``.
``--model tiny`` runs on a tiny random Llama instead (a toy stand-in; label the numbers so).

Each side is timed by the CPU time of this process (``time.process_time``, all threads) with
torch on ``--threads`` threads (default 1), which is far less sensitive to other jobs on a shared
machine than wall time (printed too); the headline speedup is the CPU-time ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import torch
from lm_kit.llm import GenParams
from lm_kit.llm.local import TransformersClient

SUBJECTS = [
    "France", "Italy", "Spain", "Germany", "Japan", "Canada", "Egypt", "Brazil",
    "Kenya", "Norway", "India", "Mexico", "Peru", "Chile", "Greece", "Poland",
]  # fmt: skip


def prompts(n: int) -> list[str]:
    out = []
    for i in range(n):
        s = SUBJECTS[i % len(SUBJECTS)]
        out.append(f"The capital of {s} is" if i % 2 == 0 else f"A short fact about {s}: it")
    return out


def load(spec: str):
    if spec == "tiny":
        from lm_kit.tiny import tiny_model, tiny_tokenizer

        return tiny_model("llama", d=64, layers=4), tiny_tokenizer()
    from lm_kit.loading import load_model

    return load_model(spec)


def sequential(model, tok, texts: list[str], max_new: int) -> list[str]:
    outs = []
    with torch.no_grad():
        for t in texts:
            enc = tok(t, return_tensors="pt")
            gen = model.generate(
                **enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id
            )
            outs.append(tok.decode(gen[0, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    return outs


async def batched(client: TransformersClient, texts: list[str], max_new: int) -> list[str]:
    res = await client.map(texts, params=GenParams(max_tokens=max_new))
    return [r.text for r in res]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new", type=int, default=16)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load(args.model)
    texts = prompts(args.n)
    sequential(model, tok, texts[:2], 4)  # warm-up
    c0, t0 = time.process_time(), time.perf_counter()
    seq = sequential(model, tok, texts, args.max_new)
    c_seq, t_seq = time.process_time() - c0, time.perf_counter() - t0
    client = TransformersClient(model, tok, max_batch=args.max_batch)
    c0, t0 = time.process_time(), time.perf_counter()
    bat = asyncio.run(batched(client, texts, args.max_new))
    c_bat, t_bat = time.process_time() - c0, time.perf_counter() - t0
    same = sum(a == b for a, b in zip(seq, bat, strict=True))
    label = " (toy stand-in: tiny random Llama)" if args.model == "tiny" else ""
    print(f"model {args.model}{label}, {args.n} prompts, {args.max_new} new tokens, greedy, CPU")
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"   sequential generate : {c_seq:7.2f} CPU s {t_seq:7.2f} wall s")
    print(
        f"   TransformersClient  : {c_bat:7.2f} CPU s {t_bat:7.2f} wall s"
        f"  ({client.batches_run} batches, max_batch {args.max_batch})"
    )
    print(f"   identical texts     : {same}/{args.n}")
    print(f"   example: {texts[0]!r} -> {bat[0]!r}")
    print("(absolute numbers depend on machine load; read the ratios)")
    print(f"wall-clock speedup batched/sequential: {t_seq / t_bat:.2f}")
    print(f"speedup batched/sequential ({args.n} prompts): {c_seq / c_bat:.2f}")


if __name__ == "__main__":
    main()
