"""repe vs repeng vs steering-vectors, side by side on the same data and model.

Run ONLY in the separate peers environment (repeng pins numpy<2, steering-vectors pins
transformers<5):

    cd /work/main && UV_PROJECT_ENVIRONMENT=/work/main/.venv-peers \
        uv run --no-default-groups --group peers python benchmarks/repe_vs_peers.py

Three parts:
1. Planted direction (synthetic activations, D=64, 256 pairs): cosine of each library's
   direction to the planted one. repeng runs its own ``read_representations`` with the planted
   activations swapped in through its ``transform_hiddens`` hook; steering-vectors runs its
   aggregators.
2. SmolLM2-135M-Instruct (offline): train on 48 sentiment pairs, score 24 held-out pairs of
   unseen items and adjectives, all with activations read by repe's hooks, so only the
   directions differ. Reports held-out AUROC/pair accuracy per library (best layer and mean over
   layers) and the cosine to the "held-out-best" direction (mean difference fitted on the
   held-out pairs themselves).
3. Hook overhead: ``add`` at every block vs the plain forward, prefill (B x T) and KV-cached
   decoding, interleaved repeats, medians; repe ``steer`` vs repeng ``ControlModel`` vs
   steering-vectors ``apply``.
4. Interop: a repeng ``ControlVector`` and a steering-vectors ``SteeringVector`` imported into
   repe (object and GGUF) and applied with ``steer`` give the same logits as the peers' own
   application; a repe GGUF export loads in repeng unchanged.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")


def cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ----------------------------------------------------------------------------------- part 1
def planted_part() -> dict[str, float]:
    from lm_kit.tiny import tiny_model, tiny_tokenizer
    from repe.finders import fit_direction
    from repe.synthetic import planted_pairs
    from repeng import DatasetEntry
    from repeng.extract import read_representations
    from steering_vectors.aggregators import logistic_aggregator, mean_aggregator, pca_aggregator

    p = planted_pairs(n=256, d=64, seed=0)
    u = p.directions[0]
    res: dict[str, float] = {}
    for name in ("mean_diff", "pca_pm", "pca_repe", "logistic", "lda", "leace"):
        d = fit_direction(name, p.pos, p.neg)
        res[f"repe {name}"] = cos(d.write[0], u)
    inter = np.empty((512, 64), np.float32)
    inter[::2], inter[1::2] = p.pos, p.neg
    entries = [DatasetEntry(positive="a", negative="b") for _ in range(256)]
    # repeng runs a real forward first; its hiddens are then swapped for the planted ones, so a
    # tiny random model stands in for the forward (the result does not depend on it)
    model, tok = tiny_model("llama", d=64, layers=2), tiny_tokenizer()
    for method in ("pca_diff", "pca_center"):
        dirs = read_representations(
            model,
            tok,
            entries,
            hidden_layers=[1],
            batch_size=64,
            method=method,
            transform_hiddens=lambda h: {k: inter.copy() for k in h},
        )
        res[f"repeng {method}"] = cos(dirs[1], u)
    pos, neg = torch.tensor(p.pos, dtype=torch.float32), torch.tensor(p.neg, dtype=torch.float32)
    for name, agg in (
        ("mean", mean_aggregator()),
        ("pca", pca_aggregator()),
        ("logistic", logistic_aggregator()),
    ):
        res[f"sv {name}"] = cos(agg(pos, neg).numpy(), u)
    return res


# ----------------------------------------------------------------------------------- part 2
def reading_part(model, tok, layers: list[int]) -> dict[str, dict[str, float]]:
    from repe.activations import pair_activations
    from repe.data import render
    from repe.data.builders import (
        SENTIMENT_TEST_ADJ,
        SENTIMENT_TEST_ITEMS,
        SENTIMENT_TRAIN_ADJ,
        SENTIMENT_TRAIN_ITEMS,
        sentiment_pairs,
    )
    from repe.finders import fit_direction
    from repe.metrics import auroc, group_accuracy
    from repeng import ControlVector, DatasetEntry
    from steering_vectors import train_steering_vector
    from steering_vectors.aggregators import mean_aggregator, pca_aggregator

    train = sentiment_pairs(SENTIMENT_TRAIN_ITEMS, SENTIMENT_TRAIN_ADJ)
    test = sentiment_pairs(SENTIMENT_TEST_ITEMS, SENTIMENT_TEST_ADJ)
    t0 = time.perf_counter()
    tr_pos, tr_neg = pair_activations(model, tok, train, layers)
    t_repe_read = time.perf_counter() - t0
    te_pos, te_neg = pair_activations(model, tok, test, layers)
    texts = lambda ps: [(render(p.positive, tok).text, render(p.negative, tok).text) for p in ps]  # noqa: E731
    tr_txt = texts(train)

    dirs: dict[str, dict[int, np.ndarray]] = {}
    for name in ("mean_diff", "pca_pm", "lda"):
        dirs[f"repe {name}"] = {
            l_: fit_direction(name, tr_pos[l_], tr_neg[l_], layer=l_).read[0] for l_ in layers
        }
    tok.padding_side = "left"  # repeng reads the last column (correct only with left padding)
    entries = [DatasetEntry(positive=a, negative=b) for a, b in tr_txt]
    t0 = time.perf_counter()
    cv = ControlVector.train(
        model, tok, entries, hidden_layers=layers, batch_size=16, method="pca_diff"
    )
    t_repeng = time.perf_counter() - t0
    dirs["repeng pca_diff"] = {l_: cv.directions[l_] for l_ in layers}
    cv2 = ControlVector.train(
        model, tok, entries, hidden_layers=layers, batch_size=16, method="pca_center"
    )
    dirs["repeng pca_center"] = {l_: cv2.directions[l_] for l_ in layers}
    for name, agg in (("mean", mean_aggregator()), ("pca", pca_aggregator())):
        try:
            sv = train_steering_vector(
                model, tok, tr_txt, layers=layers, aggregator=agg, batch_size=8
            )
            dirs[f"sv {name}"] = {l_: sv.layer_activations[l_].float().numpy() for l_ in layers}
        except Exception as e:  # noqa: BLE001 - keep the comparison going
            print(f"steering-vectors {name} failed: {type(e).__name__}: {e}")
    best_ref = {l_: (te_pos[l_] - te_neg[l_]).mean(0) for l_ in layers}
    out: dict[str, dict[str, float]] = {}
    for lib, per in dirs.items():
        aucs, accs, coss = [], [], []
        for l_ in layers:
            r = per[l_] / np.linalg.norm(per[l_])
            mu = (tr_pos[l_].mean(0) + tr_neg[l_].mean(0)) / 2
            sp, sn = (te_pos[l_] - mu) @ r, (te_neg[l_] - mu) @ r
            aucs.append(auroc(sp, sn))
            accs.append(group_accuracy(sp, sn))
            coss.append(cos(per[l_], best_ref[l_]))
        b = int(np.argmax(aucs))
        out[lib] = {
            "auroc_best": aucs[b],
            "layer_best": layers[b],
            "acc_best": accs[b],
            "auroc_mean": float(np.mean(aucs)),
            "auroc_min": float(np.min(aucs)),
            "acc_mean": float(np.mean(accs)),
            "cos_heldout_best_mean": float(np.mean(coss)),
        }
    out["_timing"] = {"repe_read_s": t_repe_read, "repeng_train_s": t_repeng}
    return out


# ----------------------------------------------------------------------------------- part 3
def overhead_part(model, tok, b: int, t: int, repeats: int, new_tokens: int) -> dict[str, float]:
    from repe import SteerSpec, steer
    from repe.sites import model_identity
    from repe.vector import ReadingVector
    from repeng import ControlModel, ControlVector
    from steering_vectors import SteeringVector

    n = model.config.num_hidden_layers
    d = model.config.hidden_size
    rng = np.random.default_rng(0)
    dirs = {i: (0.01 * rng.standard_normal(d)).astype(np.float32) for i in range(n)}
    v = ReadingVector(
        write={i: w[None] for i, w in dirs.items()},
        read={i: (w / np.linalg.norm(w))[None] for i, w in dirs.items()},
        mu={},
        meta={"model": model_identity(model)},
    )
    spec = SteerSpec(v, coeff=1.0, units="raw")
    sv = SteeringVector(
        layer_activations={i: torch.tensor(w) for i, w in dirs.items()}, layer_type="decoder_block"
    )
    cv = ControlVector(model_type=model.config.model_type, directions=dirs)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 40000, (b, t), generator=g)
    mask = torch.ones_like(ids)
    mask[1::2, : t // 4] = 0  # half the rows left-padded, so masks matter
    prompt = torch.randint(10, 40000, (1, 16), generator=g)

    def prefill():
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)

    def decode():
        with torch.no_grad():
            model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=2,
            )

    class Repeng:
        def __enter__(self):
            self.cm = ControlModel(model, list(range(n)))  # mutates the model (module swap)
            self.cm.set_control(cv, 1.0)

        def __exit__(self, *a):
            self.cm.reset()
            self.cm.unwrap()

    import contextlib

    configs = {
        "plain": contextlib.nullcontext,
        "repe": lambda: steer(model, [spec], positions="all"),
        "repeng": Repeng,
        "sv": lambda: sv.apply(model),
    }
    res: dict[str, float] = {}
    for phase, fn in (("prefill", prefill), ("decode", decode)):
        times: dict[str, list[float]] = {k: [] for k in configs}
        for name, ctx in configs.items():  # warm-up, and check each one works
            try:
                with ctx():
                    fn()
            except Exception as e:  # noqa: BLE001
                print(f"{name} {phase} failed: {type(e).__name__}: {e}")
                times.pop(name)
        for _ in range(repeats):
            for name in list(times):
                with configs[name]():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in med:
            res[f"{phase} {k} s"] = med[k]
            if k != "plain":
                res[f"{phase} ratio {k}/plain"] = med[k] / med["plain"]
    return res


# ----------------------------------------------------------------------------------- part 4
def interop_part(model, tok, tmp: str) -> dict[str, float]:
    import os

    from repe import SteerSpec, export_gguf, from_repeng, from_steering_vectors, import_gguf, steer
    from repeng import ControlModel, ControlVector
    from steering_vectors import SteeringVector

    d = model.config.hidden_size
    rng = np.random.default_rng(1)
    layers = list(range(8, 21))
    dirs = {i: (0.5 * rng.standard_normal(d)).astype(np.float32) for i in layers}
    ids = torch.tensor([tok("The movie was honestly", add_special_tokens=False)["input_ids"]])

    def run() -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=ids).logits.float()

    base = run()
    res: dict[str, float] = {}
    cv = ControlVector(model_type=model.config.model_type, directions=dirs)
    cm = ControlModel(model, layers)  # mutates the model until unwrap()
    cm.set_control(cv, 1.0)
    try:
        theirs = run()
    finally:
        cm.reset()
        cm.unwrap()
    with steer(model, [SteerSpec(from_repeng(cv), coeff=1.0, units="raw")]):
        ours = run()
    res["steer shift (max |dlogit|)"] = float((theirs - base).abs().max())
    res["repeng ControlModel vs repe(from_repeng) max |dlogit|"] = float(
        (theirs - ours).abs().max()
    )
    g = os.path.join(tmp, "repeng.gguf")
    cv.export_gguf(g)
    back = import_gguf(g, model)
    res["repeng GGUF -> repe max |dw|"] = max(
        float(np.abs(back.write[i][0] - dirs[i]).max()) for i in layers
    )
    g2 = export_gguf(from_repeng(cv), os.path.join(tmp, "repe.gguf"), coeff=1.0, units="raw")
    cv2 = ControlVector.import_gguf(str(g2))
    res["repe GGUF -> repeng max |dw|"] = max(
        float(np.abs(np.asarray(cv2.directions[i]) - dirs[i]).max()) for i in layers
    )
    sv = SteeringVector(
        layer_activations={i: torch.tensor(w) for i, w in dirs.items()}, layer_type="decoder_block"
    )
    try:
        with sv.apply(model):
            theirs_sv = run()
        with steer(model, [SteerSpec(from_steering_vectors(sv), coeff=1.0, units="raw")]):
            ours_sv = run()
        res["sv apply vs repe(from_steering_vectors) max |dlogit|"] = float(
            (theirs_sv - ours_sv).abs().max()
        )
    except Exception as e:  # noqa: BLE001 - keep the comparison going
        print(f"steering-vectors apply failed: {type(e).__name__}: {e}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--new-tokens", type=int, default=24)
    ap.add_argument("--layers", default="0-29", help="blocks for the reading comparison")
    ap.add_argument(
        "--skip-reading", action="store_true", help="skip part 2 (the slow SmolLM2 reading run)"
    )
    args = ap.parse_args()
    import sys

    sys.stdout.reconfigure(line_buffering=True)  # progress visible when redirected to a log
    import transformers
    from lm_kit import load_model

    print(
        f"transformers {transformers.__version__}, numpy {np.__version__}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    model, tok = load_model("smollm2")
    lo, hi = (int(x) for x in args.layers.split("-"))
    layers = list(range(lo, hi + 1))

    print(
        "\n== 1. planted direction (synthetic, D=64, 256 pairs): cosine to the planted direction =="
    )
    planted = planted_part()
    for k, v in planted.items():
        print(f"  {k:22s} {v:+.4f}")

    reading: dict = {}
    if not args.skip_reading:
        print(
            "\n== 2. SmolLM2 held-out reading (48 train pairs, 24 held-out pairs of unseen items/adjectives) =="
        )
        reading = reading_part(model, tok, layers)
        timing = reading.pop("_timing")
        print(
            f"  {'library/method':20s} {'AUROC best (layer)':>19s} {'acc best':>8s} {'AUROC mean':>10s} {'AUROC min':>9s} {'acc mean':>8s} {'cos held-out-best':>17s}"
        )
        for k, r in reading.items():
            print(
                f"  {k:20s} {r['auroc_best']:12.3f} ({r['layer_best']:2d})  {r['acc_best']:8.3f} {r['auroc_mean']:10.3f} {r['auroc_min']:9.3f} {r['acc_mean']:8.3f} {r['cos_heldout_best_mean']:17.3f}"
            )
        print(
            f"  activation reading for 96 stimuli at {len(layers)} blocks: repe {timing['repe_read_s']:.1f} s; repeng ControlVector.train {timing['repeng_train_s']:.1f} s"
        )

    print(
        f"\n== 3. hook overhead: add at all {model.config.num_hidden_layers} blocks (prefill B={args.batch}, T={args.tokens}; decode {args.new_tokens} tokens, KV cache) =="
    )
    over = overhead_part(model, tok, args.batch, args.tokens, args.repeats, args.new_tokens)
    for k, v in over.items():
        print(f"  {k:28s} {v:.4f}")

    import tempfile

    print("\n== 4. interop: peers' vectors imported into repe and applied (same logits?) ==")
    with tempfile.TemporaryDirectory() as tmp:
        interop = interop_part(model, tok, tmp)
    for k, v in interop.items():
        print(f"  {k:55s} {v:.3g}")

    print("\n(CPU timings on a shared 2-core machine; medians of interleaved repeats)")
    print(f"cosine repe vs planted: {planted['repe pca_pm']:.4f}")
    print(f"cosine repeng vs planted: {planted['repeng pca_diff']:.4f}")
    print(f"cosine steering-vectors vs planted: {planted['sv pca']:.4f}")
    if reading:
        print(f"held-out reading accuracy repe: {reading['repe mean_diff']['acc_mean']:.4f}")
        print(f"held-out reading accuracy repeng: {reading['repeng pca_diff']['acc_mean']:.4f}")
        if "sv mean" in reading:
            print(
                f"held-out reading accuracy steering-vectors: {reading['sv mean']['acc_mean']:.4f}"
            )
        print(f"held-out AUROC repe: {reading['repe mean_diff']['auroc_mean']:.4f}")
        print(f"held-out AUROC repeng: {reading['repeng pca_diff']['auroc_mean']:.4f}")
        print(
            f"cosine repe vs held-out-best: {reading['repe mean_diff']['cos_heldout_best_mean']:.4f}"
        )
        print(
            f"cosine repeng vs held-out-best: {reading['repeng pca_diff']['cos_heldout_best_mean']:.4f}"
        )
    for peer in ("repe", "repeng", "sv"):
        if f"prefill ratio {peer}/plain" in over:
            name = "steering-vectors" if peer == "sv" else peer
            print(f"hook overhead {name}: {over[f'prefill ratio {peer}/plain']:.4f}")
    for peer in ("repe", "repeng", "sv"):
        if f"decode ratio {peer}/plain" in over:
            name = "steering-vectors" if peer == "sv" else peer
            print(f"decode hook overhead {name}: {over[f'decode ratio {peer}/plain']:.4f}")
    if "prefill ratio repe/plain" in over:
        print(f"overhead steer/plain: {over['prefill ratio repe/plain']:.4f}")


if __name__ == "__main__":
    main()
