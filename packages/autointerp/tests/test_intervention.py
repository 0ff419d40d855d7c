"""Steering, the KL-matched strength search, and the intervention explainer/scorer on a tiny Llama
over the planted word vocabulary (decoder rows of token-class latents promote their class)."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
import torch
from autointerp.config import PipelineConfig, preset
from autointerp.explainers.intervention import InterventionExplainer
from autointerp.pipeline import Pipeline, load_scores
from autointerp.schema import Explanation, LatentExamples, Window
from autointerp.scorers.intervention import InterventionScorer
from autointerp.steering import (
    InterventionConfig,
    Steerer,
    kl_mean,
    search_strength,
    select_prompts,
    truncate_at_first_firing,
)
from autointerp.synthetic import class_explanation, make_planted_corpus
from autointerp.testing import (
    OracleClient,
    OracleJudge,
    WordTokenizer,
    planted_steering_model,
)
from lm_kit.hooks import assert_no_hooks
from scipy.special import rel_entr

SITE = "resid_post.1"


@pytest.fixture(scope="module")
def planted_small():
    return make_planted_corpus(n_docs=200)


@pytest.fixture(scope="module")
def setup(planted_small):
    tok = WordTokenizer(planted_small.vocab)
    model, w = planted_steering_model(planted_small.vocab)
    return tok, model, Steerer(model, tok, SITE, w)


def _ids(tok, text):
    return tok(text)["input_ids"]


PROMPTS = ["the dog was near the old house", "she found a box under", "we drove to Paris in the"]


@pytest.fixture(scope="module")
def session(setup):
    tok, _, st = setup
    return st.session([_ids(tok, p) for p in PROMPTS])


def test_zero_strength_equals_no_steering(setup, session):
    _, model, st = setup
    v = st.direction(0)
    assert torch.equal(session.last_logprobs(v, 0.0), session.clean_logp)
    seeds = [1, 2, 3]
    a = session.generate(None, 0.0, 6, seeds)
    b = session.generate(v, 0.0, 6, seeds)
    assert torch.equal(a, b)
    assert session.kl(v, 0.0) == 0.0
    assert_no_hooks(model)


def test_cached_steering_equals_uncached(setup, session):
    """The KV-cached last-token forward and every cached decode step match one uncached forward
    of the whole sequence steered from the last prompt token on (delphi PR #151 steered only the
    first generated token)."""
    _, model, st = setup
    v, s = st.direction(0), 2.5
    full = session.full_logits(v, s)
    assert torch.allclose(
        torch.log_softmax(full[:, -1], -1), session.last_logprobs(v, s), atol=1e-4
    )
    ids, logits = session.generate(v, s, 6, [4, 5, 6], return_logits=True)
    full = session.full_logits(v, s, ids)[:, session.T - 1 : -1]
    assert torch.allclose(full, logits, atol=1e-4)
    # steering acts on every decode step: the unsteered logits differ at each generated position
    clean = session.full_logits(None, 0.0, ids)[:, session.T - 1 : -1]
    assert ((clean - logits).abs().amax(-1) > 1e-2).all()
    assert_no_hooks(model)


def test_left_padded_batch_equals_single_prompts(setup, session):
    tok, _, st = setup
    v = st.direction(1)
    batch = session.last_logprobs(v, 1.7)
    for r, p in enumerate(PROMPTS):
        one = st.session([_ids(tok, p)]).last_logprobs(v, 1.7)
        assert torch.allclose(batch[r], one[0], atol=1e-4)


def test_kl_matches_closed_form_and_grows_with_strength(setup, session):
    _, _, st = setup
    v = st.direction(0)
    lp = session.last_logprobs(v, 2.0)
    p, q = lp.exp().double().numpy(), session.clean_logp.exp().double().numpy()
    ref = np.mean(rel_entr(p, q).sum(-1))
    assert kl_mean(lp, session.clean_logp, "steered_clean") == pytest.approx(ref, rel=1e-3)
    ref_rev = np.mean(rel_entr(q, p).sum(-1))
    assert kl_mean(lp, session.clean_logp, "clean_steered") == pytest.approx(ref_rev, rel=1e-3)
    grid = [0.0, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.1, 0.2, 0.4, 0.8, 1.6]
    kls = [session.kl(v, s) for s in grid]
    assert kls[0] == 0.0
    assert all(b > a for a, b in zip(kls, kls[1:], strict=False)), kls
    # near 0, KL is quadratic in s (second-order expansion): KL(2s)/KL(s) -> 4
    assert kls[2] / kls[1] == pytest.approx(4.0, rel=0.15)


@pytest.mark.parametrize("target", [0.1, 0.33, 1.0, 3.0])
def test_search_hits_target_kl(setup, session, target):
    _, _, st = setup
    v = st.direction(0)
    cfg = InterventionConfig(target_kl=target)
    r = session.search(v, 1.0, cfg)
    assert r.reached and abs(r.kl - target) <= 0.1 * target
    assert len(r.evaluations) <= 1 + cfg.max_bracket + cfg.max_bisect
    # independent check: the uncached steered forward gives the same KL at the chosen strength
    lp = torch.log_softmax(session.full_logits(v, r.s)[:, -1], -1)
    assert kl_mean(lp, session.clean_logp, "steered_clean") == pytest.approx(r.kl, rel=1e-3)


def test_search_closed_forms():
    cfg = InterventionConfig(target_kl=1.0)
    r = search_strength(lambda s: 0.04 * s * s, 50.0, cfg)  # s* = 5
    assert r.reached and abs(r.kl - 1.0) <= 0.1 and r.s == pytest.approx(5.0, rel=0.06)
    r = search_strength(lambda s: 0.04 * s * s, 0.002, cfg)  # bracketed at the 12th doubling
    assert r.reached and r.s == pytest.approx(5.0, rel=0.06)
    r = search_strength(lambda s: 0.04 * s * s, 0.001, cfg)  # 0.001 * 2**12 < 5: limit reached
    assert not r.reached and r.s == pytest.approx(4.096) and "kl_unreached" in r.flags
    flat = search_strength(lambda s: 0.2, 1.0, cfg)  # unreachable: closest kept, flagged
    assert not flat.reached and "kl_unreached" in flat.flags and flat.kl == 0.2
    assert len(flat.evaluations) == 1 + cfg.max_bracket
    bump = search_strength(lambda s: 2.0 * math.exp(-((math.log(s) - 1) ** 2)), 0.01, cfg)
    assert bump.reached  # a crossing exists on the rising side
    zero = search_strength(lambda s: 0.0, 0.0, cfg)  # no usable s0 -> starts at 1
    assert zero.evaluations[0][0] == 1.0 and not zero.reached


def test_config_validation():
    with pytest.raises(ValueError, match="target_kl"):
        InterventionConfig(target_kl=0)
    with pytest.raises(ValueError, match="kl_direction"):
        InterventionConfig(kl_direction="forward")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="baseline"):
        InterventionConfig(baselines=("mean_ablation",))


def test_steerer_rejects_wrong_width(setup):
    tok, model, _ = setup
    with pytest.raises(ValueError, match="dims"):
        Steerer(model, tok, SITE, torch.zeros(3, 7))


def test_prompt_truncation_ignores_position_zero():
    w = Window(doc_id=0, start=0, tokens=list("abcde"), token_ids=[5, 6, 7, 8, 9],
               acts=[3.0, 0.0, 0.0, 1.0, 2.0], kind="test", quantile=9)  # fmt: skip
    assert truncate_at_first_firing(w) == [5, 6, 7, 8]
    dead = w.model_copy(update={"acts": [1.0, 0, 0, 0, 0]})
    assert truncate_at_first_firing(dead) is None
    ws = [w.model_copy(update={"quantile": q, "doc_id": q}) for q in range(10)]
    assert len(select_prompts(ws, 5)) == 5  # one per quintile first


def _planted_examples(planted, latent: int) -> LatentExamples:
    from autointerp.config import ExampleConfig
    from autointerp.examples import ExampleBuilder

    return ExampleBuilder(planted.source, ExampleConfig(), None).build(latent)


def test_scorer_prefers_correct_explanation(setup, planted_small, tmp_path):
    tok, model, st = setup
    scorer = InterventionScorer(
        steerer=st,
        judge=OracleJudge(tok),
        intervention=InterventionConfig(target_kl=1.0, baselines=("random_direction",)),
        work_dir=tmp_path,
        bootstrap_b=200,
    )
    for p in planted_small.latents:
        if p.kind != "token_class":
            continue
        ex = _planted_examples(planted_small, p.index)
        vals = {}
        for kind, z in (("true", p.true), ("wrong", p.wrong), ("random", p.random)):
            r = asyncio.run(scorer.score(ex, Explanation(latent=p.index, explainer=kind, text=z)))
            assert not r.failed and r.value is not None, r.error
            vals[kind] = r
        assert vals["true"].value > vals["wrong"].value, (p.classes, vals)
        assert vals["true"].value > vals["random"].value, (p.classes, vals)
        assert vals["true"].ci_lo > 0, (p.classes, vals["true"])
        # the steering is explained better than a random direction at the same KL
        assert vals["true"].metrics["random_direction_delta"] < vals["true"].value
        assert vals["true"].n_pos == len(select_prompts(ex.test, 30)) >= 20
    # generations are computed once per latent and stored: a new scorer reads them back
    stored = sorted(tmp_path.glob("latent_*.json"))
    assert len(stored) == 6
    again = InterventionScorer(steerer=st, judge=OracleJudge(tok), work_dir=tmp_path,
                               intervention=InterventionConfig(baselines=("random_direction",)),
                               bootstrap_b=200)  # fmt: skip
    ex = _planted_examples(planted_small, 0)
    assert again.generations(ex) == scorer.generations(ex)


def test_zero_ablation_baseline_runs(setup, planted_small):
    tok, _, st = setup
    # an "encoder" that reads the latent as the projection on its decoder row
    w = st.W_dec
    st2 = Steerer(st.model, tok, SITE, w, encode=lambda h: h @ w.T)
    scorer = InterventionScorer(steerer=st2, judge=OracleJudge(tok), bootstrap_b=50,
                                intervention=InterventionConfig(baselines=("zero_ablation",)))  # fmt: skip
    p = planted_small.latents[0]
    r = asyncio.run(scorer.score(_planted_examples(planted_small, 0),
                                 Explanation(latent=0, explainer="x", text=p.true)))  # fmt: skip
    assert "zero_ablation_delta" in r.metrics and r.metrics["zero_ablation_delta"] is not None


def test_explainer_names_the_promoted_class(setup, planted_small):
    tok, _, st = setup
    expl = InterventionExplainer(OracleClient(), steerer=st, intervention=InterventionConfig())
    hits = 0
    classes = [p for p in planted_small.latents if p.kind == "token_class"]
    for p in classes:
        e = asyncio.run(expl.explain(_planted_examples(planted_small, p.index)))
        assert not e.failed, e.error
        hits += e.text == class_explanation(p.classes)
    assert hits >= len(classes) - 1


def test_pipeline_runs_intervention(setup, planted_small, tmp_path):
    tok, _, st = setup
    cfg = preset("default")
    cfg = PipelineConfig(
        examples=cfg.examples,
        explain=cfg.explain,
        score=cfg.score,
        intervention=InterventionConfig(n_score=10, n_explain=5),
    )
    pipe = Pipeline(tmp_path, cfg, OracleClient(), None, source=planted_small.source,
                    explainers=("intervention", "token_list"), progress=False,
                    steerer=st, judge=OracleJudge(tok))  # fmt: skip
    out = pipe.run(latents=[0, 1], scorers=["intervention"])
    assert out["explain"]["failed"] == 0
    rows = [r for r in load_scores(tmp_path) if r.scorer == "intervention"]
    assert len(rows) == 4 and all(r.value is not None for r in rows)
    md = (tmp_path / "report.md").read_text()
    assert "intervention" in md
    again = Pipeline(tmp_path, cfg, OracleClient(), None, source=planted_small.source,
                     explainers=("intervention", "token_list"), progress=False,
                     steerer=st, judge=OracleJudge(tok))  # fmt: skip
    out2 = again.run(latents=[0, 1], scorers=["intervention"])
    assert out2["score"]["skipped"] == 4 and out2["explain"]["skipped"] == 4


def test_pipeline_without_steerer_names_the_fix(planted_small, tmp_path):
    pipe = Pipeline(tmp_path, preset("default"), OracleClient(), None,
                    source=planted_small.source, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="--subject"):
        pipe.run(latents=[0], scorers=["intervention"])


def test_transformers_judge_matches_uncached_nll():
    """The judge's cached-prefix, right-padded batch NLL equals -sum log p(z) from one plain forward
    of the concatenated token ids."""
    from autointerp.scorers.intervention import TransformersJudge
    from lm_kit.tiny import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_model("llama", d=32, layers=2, vocab=512)
    judge = TransformersJudge(model, tok)
    passages = [tok("the cat sat", add_special_tokens=False)["input_ids"],
                tok("a much longer passage about rain and snow", add_special_tokens=False)["input_ids"]]  # fmt: skip
    z = "weather words"
    got = judge.nll(passages, z)
    zi = judge._enc(z)
    for p, g in zip(passages, got, strict=True):
        ids = judge.prefix + judge.head + p + judge.tail + zi
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        n = len(ids)
        ref = -sum(float(lp[t - 1, ids[t]]) for t in range(n - len(zi), n))
        assert g == pytest.approx(ref, rel=1e-4, abs=1e-4)


def test_score_without_llm_reads_stored_llm_explanations(setup, planted_small, tmp_path):
    """`interp score --scorers intervention` needs no LLM: explanations written earlier by an LLM
    explainer are scored as stored (before: their key named the LLM, so they read as missing)."""
    tok, _, st = setup
    cfg = PipelineConfig(intervention=InterventionConfig(n_score=10))
    Pipeline(tmp_path, cfg, OracleClient(), None, source=planted_small.source,
             explainers=("default",), progress=False).run(
        stages=["examples", "explain"], latents=[0, 1])  # fmt: skip
    later = Pipeline(tmp_path, cfg, None, None, explainers=("default",), progress=False,
                     steerer=st, judge=OracleJudge(tok))  # fmt: skip
    out = later.run(stages=["score"], latents=[0, 1], scorers=["intervention"])
    assert out["score"] == {"done": 2, "skipped": 0, "failed": 0}
    rows = [r for r in load_scores(tmp_path) if r.scorer == "intervention"]
    assert all(r.value is not None and "explanation_failed" not in r.flags for r in rows)
    assert (
        later.run(stages=["score"], latents=[0, 1], scorers=["intervention"])["score"]["skipped"]
        == 2
    )
