"""Evaluation harness, scans and contrast vectors against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from repe import RepeError, SteerSpec, Stimulus, steer
from repe.control.contrast import contrast_generate, contrast_logits
from repe.data import render
from repe.eval import ABItem, ab_prob, kl_cost, mc_score, pareto_front, sweep, token_set_logodds
from repe.scan import scan
from repe.vector import ReadingVector

NEUTRAL = [
    "The capital of France is Paris. The capital of Italy is Rome. Rivers run to the sea.",
    "A quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun.",
]


def vec(model, seed=0):
    from repe.sites import model_identity

    d = model.config.hidden_size
    rng = np.random.default_rng(seed)
    w = {layer: rng.standard_normal((1, d)).astype(np.float32) for layer in range(3)}
    return ReadingVector(
        write=w,
        read={k: x / np.linalg.norm(x) for k, x in w.items()},
        mu={k: np.zeros(d, np.float32) for k in w},
        meta={"model": model_identity(model)},
    )


def test_kl_cost_matches_torch_kl_div(llama, tok):
    v = vec(llama)
    spec = SteerSpec(v, coeff=3.0, layers=[1])
    zero = kl_cost(llama, tok, NEUTRAL, lambda: steer(llama, [SteerSpec(v, coeff=0.0)]))
    assert zero.kl == 0.0 and zero.ppl_ratio == 1.0
    rep = kl_cost(llama, tok, NEUTRAL, lambda: steer(llama, [spec]), batch_size=1)
    # independent: one sequence at a time, torch's kl_div
    total, n = 0.0, 0
    for t in NEUTRAL:
        ids = torch.tensor([tok(t, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            lb = torch.log_softmax(llama(input_ids=ids).logits[0, :-1], -1)
            with steer(llama, [spec]):
                ls = torch.log_softmax(llama(input_ids=ids).logits[0, :-1], -1)
        total += float(torch.nn.functional.kl_div(ls, lb, log_target=True, reduction="sum"))
        n += ids.shape[1] - 1
    assert rep.kl == pytest.approx(total / n, rel=1e-4)
    assert rep.n_tokens == n


def test_ab_prob_matches_manual_softmax(llama, tok):
    items = [ABItem("Is the movie good?", "yes", "no", "A"), ABItem("Is it bad?", "yes", "no", "B")]
    p = ab_prob(llama, tok, items)
    a_id = tok("A", add_special_tokens=False)["input_ids"][0]
    b_id = tok("B", add_special_tokens=False)["input_ids"][0]
    for it, got in zip(items, p, strict=True):
        r = render(
            Stimulus(user=f"{it.question}\n\n(A) {it.answer_a}\n(B) {it.answer_b}", prefix="("), tok
        )
        with torch.no_grad():
            probs = torch.softmax(llama(input_ids=torch.tensor([r.ids])).logits[0, -1], -1)
        want = probs[a_id if it.match == "A" else b_id] / (probs[a_id] + probs[b_id])
        assert got == pytest.approx(float(want), rel=1e-4)


def test_mc_score_matches_manual_sum_logprobs(llama, tok):
    rec = {
        "question": "What is the capital of France?",
        "mc1_targets": {"choices": ["Paris", "Rome", "Madrid"], "labels": [1, 0, 0]},
    }
    res = mc_score(llama, tok, [rec])
    scores = []
    for c in rec["mc1_targets"]["choices"]:
        r = render(Stimulus(user=rec["question"], prefix=c), tok)
        ids = torch.tensor([r.ids])
        with torch.no_grad():
            lp = torch.log_softmax(llama(input_ids=ids).logits[0, :-1], -1)
        tgt = ids[0, 1:]
        s = lp[torch.arange(len(tgt)), tgt][r.response_start - 1 :].sum()
        scores.append(float(s))
    assert res.mc1 == float(np.argmax(scores) == 0)
    p = np.exp(np.array(scores) - max(scores))
    assert res.mc2 == pytest.approx(p[0] / p.sum(), rel=1e-4)
    assert res.chance == pytest.approx(1 / 3)


def test_sweep_is_resumable_and_monotone_in_a_planted_toy(llama, tok, tmp_path):
    v = vec(llama)
    calls = []

    def behaviour(factory):
        calls.append(1)
        return token_set_logodds(
            llama,
            tok,
            [Stimulus(user="How was it?", prefix="The movie was")],
            ["wonderful"],
            ["terrible"],
            factory,
        )

    ds = sweep(
        llama,
        tok,
        v,
        [-1.0, 0.0, 1.0],
        {"mid": [1], "all": [0, 1, 2]},
        behaviour,
        NEUTRAL,
        out_dir=tmp_path,
        progress=False,
        max_tokens=64,
    )
    assert len(calls) == 6
    assert float(ds.kl.sel(layer_set="mid", coeff=0.0)) == 0.0
    assert (tmp_path / "sweep.parquet").exists() or (tmp_path / "sweep.csv").exists()
    ds2 = sweep(
        llama,
        tok,
        v,
        [-1.0, 0.0, 1.0],
        {"mid": [1], "all": [0, 1, 2]},
        behaviour,
        NEUTRAL,
        out_dir=tmp_path,
        progress=False,
        max_tokens=64,
    )
    assert len(calls) == 6  # every cell came from disk
    np.testing.assert_array_equal(ds.logodds.values, ds2.logodds.values)
    front = pareto_front(ds, "logodds")
    assert front and all(n in ("mid", "all") for n, _ in front)


def test_scan_one_forward_equals_per_prefix_forwards(llama, tok):
    v = vec(llama)
    text = "The movie was wonderful and I loved it"
    s = scan(llama, tok, text, v, [0, 2])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert s.scores.shape == (2, len(ids))
    from lm_kit.hooks import capture

    for t in (1, 4, len(ids)):  # RepE's loop: one forward per prefix, read the last token
        with capture(llama, ["resid_post.0", "resid_post.2"]) as acts, torch.no_grad():
            llama(input_ids=torch.tensor([ids[:t]]))
        for row, layer in enumerate((0, 2)):
            want = v.score(layer, acts[f"resid_post.{layer}"][0, -1].double().numpy())
            assert s.scores[row, t - 1] == pytest.approx(float(want), abs=1e-4)


def test_contrast_alpha_zero_is_plain_and_generate_cache_consistent(llama, tok):
    prompts = [
        Stimulus(user="What is the capital of France?", prefix="The capital is"),
        Stimulus(user="Is the sky green?", prefix="No,"),
    ]
    logits0, b = contrast_logits(llama, tok, prompts, alpha=0.0)
    with torch.no_grad():
        plain = llama(**b.model_inputs()).logits
    m = b.attention_mask.bool()
    torch.testing.assert_close(logits0[m], plain[m], atol=1e-4, rtol=1e-4)
    la, _ = contrast_logits(llama, tok, prompts, alpha=2.0, layers=[0, 2])
    assert not torch.allclose(la[m], plain[m])
    # KV-cached greedy generation reproduces step-by-step full forwards of the 3 streams
    out = contrast_generate(llama, tok, prompts, max_new_tokens=4, alpha=2.0, layers=[0, 2])
    assert len(out) == 2
    la2, b2 = contrast_logits(llama, tok, prompts, alpha=2.0, layers=[0, 2])
    first = la2[:, -1].argmax(-1)
    gen_first = [tok(o, add_special_tokens=False)["input_ids"][:1] for o in out]
    for i, g in enumerate(gen_first):
        if g:
            assert tok.decode([int(first[i])]).strip()[:1] == tok.decode(g).strip()[:1]


def test_contrast_generate_sampling_warpers(llama, tok):
    prompts = [Stimulus(user="Is the sky green?", prefix="No,")]
    kw = dict(max_new_tokens=5, alpha=2.0, layers=[0, 2])
    greedy = contrast_generate(llama, tok, prompts, **kw)
    # top-k = 1 leaves one candidate, so sampling must reproduce greedy decoding
    assert contrast_generate(llama, tok, prompts, do_sample=True, top_k=1, seed=3, **kw) == greedy
    a = contrast_generate(llama, tok, prompts, do_sample=True, temperature=2.0, seed=5, **kw)
    assert a == contrast_generate(
        llama, tok, prompts, do_sample=True, temperature=2.0, seed=5, **kw
    )
    with pytest.raises(RepeError, match="temperature must be > 0"):
        contrast_generate(llama, tok, prompts, do_sample=True, temperature=0.0, **kw)


def test_lat_prompt_and_k_shot_task(llama, tok):
    from repe.errors import PairDataError
    from repe.eval import lat_mc_eval, lat_prompt

    assert lat_prompt("Q?", "A.", [("q1", "a1")]) == (
        "Question: q1\nAnswer: a1\n\n"
        "Consider the amount of truthfulness in the following answer.\n\n"
        "Question: Q?\nAnswer: A.\n\nThe amount of truthfulness in the answer is "
    )
    qs = ["Is the sky green", "Is Paris in France", "Do rivers run", "Is the meal good"]
    qs += ["Was the trip fun", "Is Rome in Italy", "Did the hotel win", "Was it awful"]
    # planted: the correct choice is always the same text, the wrong ones vary
    wrong = ["bad movie", "sad trip", "the sea", "left pad", "awful meal", "tears"]
    items = [
        {"question": q, "choices": [wrong[i % 6], "The capital", wrong[(i + 1) % 6]], "label": 1}
        for i, q in enumerate(qs)
    ]
    items[3]["choices"] = ["The capital", "tears", "smile"]
    items[3]["label"] = 0
    res = lat_mc_eval(
        llama, tok, items[:6], items[6:], layers=[1, 2], k_shot=1, method="mean_diff", seeds=[0, 1]
    )
    assert res["n_train"] == 5 and res["n_test"] == 2 and res["chance"] == pytest.approx(1 / 3)
    assert set(res["accuracy"]) == {1, 2} and len(res["accuracy_per_seed"][1]) == 2
    assert res["best_accuracy"] == 1.0  # the planted answer is found on held-out items
    with pytest.raises(PairDataError, match="k_shot=6"):
        lat_mc_eval(llama, tok, items[:6], items[6:], layers=[1], k_shot=6)
    with pytest.raises(PairDataError, match="label in 0..2"):
        lat_mc_eval(llama, tok, [{**items[0], "label": 3}] * 3, items[6:], layers=[1])
    with pytest.raises(PairDataError, match="empty test"):
        lat_mc_eval(llama, tok, items[:6], [], layers=[1])
