"""Extraction throughput and padding on SmolLM2-135M-Instruct (base model, no head).

Side by side in one process, on the same documents and the same length-sorted token-budget
batches: a bare forward of every batch (no hooks) vs ``lm_kit.extract.extract`` (capture hooks,
per-token gathering that drops pads, input order restored). Also the padding share of length
sorting vs input-order batching.

    uv run python benchmarks/extract_throughput.py [--docs 48] [--site resid_post.29]

Timed by per-process CPU time with torch on ``--threads`` threads (default 1), which is far less
sensitive to other jobs on a shared machine than wall time; read the ratios.
"""

from __future__ import annotations

import argparse
import time

import torch
from lm_kit.extract import _pad_left, extract, plan_batches
from lm_kit.loading import load_model
from lm_kit.positions import position_ids_from_mask


def padding_share(lengths: list[int], batches: list[list[int]]) -> float:
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / padded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=48)
    ap.add_argument("--site", default="resid_post.29")
    ap.add_argument("--batch-tokens", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    model, tok = load_model("smollm2", head=False)
    lengths = torch.randint(4, 65, (args.docs,), generator=gen).tolist()
    docs = [torch.randint(100, 40_000, (n,), generator=gen).tolist() for n in lengths]
    batches = plan_batches(lengths, args.batch_tokens)
    naive = [
        list(range(i, min(i + len(batches[0]), args.docs)))
        for i in range(0, args.docs, len(batches[0]))
    ]
    n_real = sum(lengths)

    def bare() -> None:
        with torch.no_grad():
            for b in batches:
                ids, mask = _pad_left([docs[i] for i in b], tok.pad_token_id)
                model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=position_ids_from_mask(mask),
                    use_cache=False,
                )

    def lmkit() -> None:
        extract(model, tok, docs, args.site, "all", batch_tokens=args.batch_tokens, progress=False)

    bare()  # warm-up
    times: dict[str, list[float]] = {"bare": [], "extract": []}
    for r in range(args.repeats):
        for name, fn in (
            [("bare", bare), ("extract", lmkit)]
            if r % 2 == 0
            else [("extract", lmkit), ("bare", bare)]
        ):
            t0 = time.process_time()
            fn()
            times[name].append(time.process_time() - t0)
    best = {k: min(v) for k, v in times.items()}
    print(f"{args.docs} docs, {n_real} real tokens, {len(batches)} batches, site {args.site}")
    for k, v in best.items():
        print(f"{k:<10} {v:8.3f} CPU s {n_real / v:8.0f} real tok/s")
    print(f"padding share, input order: {padding_share(lengths, naive):.3f}")
    print(f"padding share: {padding_share(lengths, batches):.3f}")
    print(f"throughput ratio extract/bare: {best['bare'] / best['extract']:.3f}")


if __name__ == "__main__":
    main()
