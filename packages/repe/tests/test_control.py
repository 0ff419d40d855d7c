"""Steering invariants on tiny random models (identities, closed forms, KV-cache correctness)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lm_kit.hooks import assert_no_hooks, capture
from repe import Condition, SteerSpec, load_vector, save_vector, steer
from repe.control import directional_ablation, gaussian, triangle
from repe.control.schedule import layer_coefficients
from repe.errors import LayerError, RepeError, UnknownNameError, VectorMismatchError
from repe.positions import left_pad
from repe.vector import ReadingVector


def rand_vector(model, layers=(0, 1, 2), seed=0, d=None) -> ReadingVector:
    d = d or model.config.hidden_size
    rng = np.random.default_rng(seed)
    write = {layer: rng.standard_normal((1, d)).astype(np.float32) for layer in layers}
    from repe.sites import model_identity

    return ReadingVector(
        write=write,
        read={k: w / np.linalg.norm(w) for k, w in write.items()},
        mu={k: np.zeros(d, np.float32) for k in layers},
        calibration={k: {"diff_norm": 2.0} for k in layers},
        meta={"site": "resid_post", "model": model_identity(model)},
    )


def batch(tok, texts):
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    return left_pad(rows, tok.pad_token_id)


def logits(model, b):
    with torch.no_grad():
        return model(**b.model_inputs()).logits


TEXTS = ["The movie was wonderful", "Paris is the capital of France and Rome"]


def test_zero_coefficient_and_plus_minus_are_identities(llama, tok):
    b = batch(tok, TEXTS)
    base = logits(llama, b)
    v = rand_vector(llama)
    with steer(llama, [SteerSpec(v, coeff=0.0)]):
        same = logits(llama, b)
    assert torch.equal(same, base)
    with steer(llama, [SteerSpec(v, coeff=3.0), SteerSpec(v, coeff=-3.0)]):
        back = logits(llama, b)
    torch.testing.assert_close(back, base, atol=1e-5, rtol=1e-5)
    with steer(llama, [SteerSpec(v, coeff=3.0)]):
        moved = logits(llama, b)
    assert (moved - base).abs().max() > 1e-3
    assert_no_hooks(llama)


def test_add_equals_closed_form_and_skips_pads(llama, tok):
    b = batch(tok, TEXTS)
    v = rand_vector(llama)
    vhat = torch.as_tensor(v.direction(1))
    with capture(llama, ["resid_post.1"]) as plain:
        logits(llama, b)
    with (
        steer(llama, [SteerSpec(v, coeff=2.5, layers=[1])]),
        capture(llama, ["resid_post.1"]) as st,
    ):
        logits(llama, b)
    diff = st["resid_post.1"] - plain["resid_post.1"]
    m = b.attention_mask.bool()
    torch.testing.assert_close(diff[m], (2.5 * vhat).expand(int(m.sum()), -1), atol=1e-5, rtol=1e-5)
    assert diff[~m].abs().max() == 0  # pads are never steered


def test_units_and_schedules(llama):
    v = rand_vector(llama)
    c = layer_coefficients(v, 2.0, [0, 1, 2], triangle(1, 2), "diff")
    assert c == pytest.approx({0: 2.0, 1: 4.0, 2: 2.0})
    g = layer_coefficients(v, 1.0, [0, 1], gaussian(0, 1.0), "unit")
    assert g[0] == 1.0 and g[1] == pytest.approx(np.exp(-0.5))
    raw = layer_coefficients(v, 1.0, [2], None, "raw")
    assert raw[2] == pytest.approx(float(np.linalg.norm(v.write[2])))
    with pytest.raises(UnknownNameError, match="resid"):
        layer_coefficients(v, 1.0, [0], None, "bogus")


@pytest.mark.parametrize("op", ["ablate", "clamp", "ablate_add"])
def test_projection_operators_set_the_component(llama, tok, op):
    b = batch(tok, TEXTS)
    v = rand_vector(llama)
    vhat = torch.as_tensor(v.direction(1))
    with (
        steer(llama, [SteerSpec(v, coeff=0.7, layers=[1], operator=op)]),
        capture(llama, ["resid_post.1"]) as st,
    ):
        logits(llama, b)
    proj = st["resid_post.1"] @ vhat
    target = 0.0 if op == "ablate" else 0.7
    m = b.attention_mask.bool()
    torch.testing.assert_close(proj[m], torch.full_like(proj[m], target), atol=1e-5, rtol=0)


def test_normalize_preserves_token_norms(llama, tok):
    b = batch(tok, TEXTS)
    v = rand_vector(llama)
    with capture(llama, ["resid_post.1"]) as plain:
        logits(llama, b)
    with (
        steer(llama, [SteerSpec(v, coeff=5.0, layers=[1], normalize=True)]),
        capture(llama, ["resid_post.1"]) as st,
    ):
        logits(llama, b)
    m = b.attention_mask.bool()
    torch.testing.assert_close(
        st["resid_post.1"].norm(dim=-1)[m],
        plain["resid_post.1"].norm(dim=-1)[m],
        atol=1e-4,
        rtol=1e-5,
    )


def test_piecewise_follows_sign_of_projection(llama, tok):
    b = batch(tok, TEXTS)
    v = rand_vector(llama)
    vhat = torch.as_tensor(v.direction(0))
    with capture(llama, ["resid_post.0"]) as plain:
        logits(llama, b)
    with (
        steer(llama, [SteerSpec(v, coeff=1.0, layers=[0], operator="piecewise")]),
        capture(llama, ["resid_post.0"]) as st,
    ):
        logits(llama, b)
    h0 = plain["resid_post.0"]
    expected = h0 + torch.sign(h0 @ vhat)[..., None] * vhat
    m = b.attention_mask.bool()
    torch.testing.assert_close(st["resid_post.0"][m], expected[m], atol=1e-5, rtol=1e-5)


def test_padded_batch_matches_single_runs(gpt2, tok):
    v = rand_vector(gpt2)
    spec = [SteerSpec(v, coeff=2.0, layers=[0, 2])]
    b = batch(tok, TEXTS)
    with steer(gpt2, spec):
        both = logits(gpt2, b)
        for i, t in enumerate(TEXTS):
            one = logits(gpt2, batch(tok, [t]))
            n = one.shape[1]
            torch.testing.assert_close(both[i, -n:], one[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("positions", ["all", "response", "prompt"])
def test_generate_with_kv_cache_matches_uncached(llama, tok, positions):
    v = rand_vector(llama)
    b = batch(tok, TEXTS)
    kw = dict(
        max_new_tokens=5,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        output_scores=True,
        return_dict_in_generate=True,
    )
    inputs = {"input_ids": b.input_ids, "attention_mask": b.attention_mask}
    with steer(llama, [SteerSpec(v, coeff=4.0, layers=[1])], positions=positions):
        cached = llama.generate(**inputs, use_cache=True, **kw)
        uncached = llama.generate(**inputs, use_cache=False, **kw)
    assert torch.equal(cached.sequences, uncached.sequences)
    for a, c in zip(cached.scores, uncached.scores, strict=True):
        torch.testing.assert_close(a, c, atol=1e-4, rtol=1e-4)
    plain = llama.generate(**inputs, use_cache=True, **kw)
    if positions == "prompt":  # decode steps are not steered, the prompt is
        assert not torch.allclose(plain.scores[0], cached.scores[0])


def test_response_positions_start_at_last_prompt_token(llama, tok):
    v = rand_vector(llama)
    b = batch(tok, TEXTS)
    with capture(llama, ["resid_post.1"]) as plain:
        logits(llama, b)
    for include, first in ((True, -1), (False, None)):
        with (
            steer(
                llama,
                [SteerSpec(v, coeff=1.0, layers=[1])],
                positions="response",
                include_last_prompt=include,
            ),
            capture(llama, ["resid_post.1"]) as st,
        ):
            logits(llama, b)
        diff = (st["resid_post.1"] - plain["resid_post.1"]).abs().amax(-1)
        if first is None:
            assert diff.max() == 0
        else:
            assert (diff[:, -1] > 0).all() and diff[:, :-1].max() == 0


def test_several_vectors_apply_in_order(llama, tok):
    b = batch(tok, TEXTS)
    v1, v2 = rand_vector(llama, seed=1), rand_vector(llama, seed=2)
    with steer(
        llama, [SteerSpec(v1, coeff=1.0, layers=[1]), SteerSpec(v2, coeff=-2.0, layers=[1])]
    ):
        a = logits(llama, b)
    with (
        steer(llama, [SteerSpec(v1, coeff=1.0, layers=[1])]),
        steer(llama, [SteerSpec(v2, coeff=-2.0, layers=[1])]),
    ):
        c = logits(llama, b)
    torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)


def test_conditional_gate_is_per_row(llama, tok):
    b = batch(tok, TEXTS)
    v = rand_vector(llama)
    base = logits(llama, b)
    # thresholds that every row passes / no row passes
    for thr, cmp_, steered in ((-2.0, ">", True), (2.0, ">", False), (2.0, "<", True)):
        cond = Condition(v, layer=0, threshold=thr, comparator=cmp_)
        with steer(llama, [SteerSpec(v, coeff=4.0, layers=[1], condition=cond)]):
            out = logits(llama, b)
        changed = (out - base).abs().amax(dim=(1, 2)) > 1e-4
        assert changed.tolist() == [steered, steered]
    # per-row: a threshold between the two rows' similarities steers exactly one row
    from repe.control.steer import _condition_gate  # noqa: F401

    with capture(llama, ["resid_post.0"]) as acts:
        logits(llama, b)
    c = torch.as_tensor(v.direction(0))
    m = b.attention_mask.bool()
    sims = []
    for i in range(2):
        hbar = acts["resid_post.0"][i][m[i]].mean(0)
        proj = (hbar @ c) * c
        sims.append(float(torch.nn.functional.cosine_similarity(hbar, torch.tanh(proj), dim=0)))
    thr = sum(sims) / 2
    with steer(llama, [SteerSpec(v, coeff=4.0, layers=[1], condition=Condition(v, 0, thr))]):
        out = logits(llama, b)
    changed = ((out - base).abs().amax(dim=(1, 2)) > 1e-4).tolist()
    assert changed == [s > thr for s in sims]


def test_directional_ablation_zeroes_every_block_input(llama, tok):
    b = batch(tok, TEXTS)
    v = rand_vector(llama)
    vhat = torch.as_tensor(v.direction(1))
    with directional_ablation(llama, v, 1), capture(llama, ["resid_pre.0", "resid_pre.2"]) as st:
        logits(llama, b)
    for name in ("resid_pre.0", "resid_pre.2"):
        assert (st[name] @ vhat).abs().max() < 1e-4
    assert_no_hooks(llama)


def test_hooks_removed_on_exception(llama, tok):
    v = rand_vector(llama)
    with pytest.raises(RuntimeError, match="boom"), steer(llama, [SteerSpec(v, coeff=1.0)]):
        raise RuntimeError("boom")
    assert_no_hooks(llama)


def test_saved_loaded_vector_gives_identical_logits(llama, tok, tmp_path):
    b = batch(tok, TEXTS)
    v = rand_vector(llama)
    with steer(llama, [SteerSpec(v, coeff=2.0, units="diff")]):
        a = logits(llama, b)
    w = load_vector(save_vector(v, tmp_path / "v.safetensors"), llama)
    with steer(llama, [SteerSpec(w, coeff=2.0, units="diff")]):
        c = logits(llama, b)
    assert torch.equal(a, c)


def _enter(*args, **kwargs):
    with steer(*args, **kwargs):
        pass


def test_bad_steering_inputs(llama, gpt2, tok):
    with pytest.raises(
        VectorMismatchError, match="hidden size 48 does not match the model's hidden size 32"
    ):
        _enter(llama, [SteerSpec(rand_vector(llama, d=48), coeff=1.0)])
    with pytest.raises(LayerError, match="valid layers are 0..2"):
        _enter(llama, [SteerSpec(rand_vector(llama), coeff=1.0, layers=[3])])
    with pytest.raises(LayerError, match="out of range"):
        _enter(llama, [SteerSpec(rand_vector(llama), coeff=1.0, layers=[-4])])
    with pytest.raises(LayerError, match="duplicated"):
        _enter(llama, [SteerSpec(rand_vector(llama), coeff=1.0, layers=[1, -2])])
    # another model with the same width
    with pytest.raises(VectorMismatchError, match="config hash"):
        _enter(gpt2, [SteerSpec(rand_vector(llama), coeff=1.0)])
    with pytest.raises(UnknownNameError, match="piecewise"):
        _enter(llama, [SteerSpec(rand_vector(llama), operator="steer_hard")])
    with pytest.raises(UnknownNameError, match="response"):
        _enter(llama, [SteerSpec(rand_vector(llama))], positions="middle")
    with pytest.raises(RepeError, match="condition layer 2 comes after"):
        cond = Condition(rand_vector(llama), layer=2, threshold=0.0)
        with steer(llama, [SteerSpec(rand_vector(llama), layers=[1], condition=cond)]):
            pass
    assert_no_hooks(llama)
