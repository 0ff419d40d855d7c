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


def test_condition_point_search_agrees_with_the_steering_gate(llama, tok):
    from repe import Stimulus
    from repe.control import find_best_condition_point
    from repe.control.conditional import best_threshold, prompt_similarities
    from repe.data import render

    t, cmp_, f1 = best_threshold(np.array([0.5, 0.6]), np.array([0.1, 0.2]))
    assert 0.2 < t < 0.5 and cmp_ == ">" and f1 == 1.0
    t, cmp_, f1 = best_threshold(np.array([0.1, 0.2]), np.array([0.5, 0.6]))
    assert cmp_ == "<" and f1 == 1.0

    v = rand_vector(llama)
    pos = [Stimulus(user=u) for u in ("The movie was wonderful", "I loved the meal")]
    neg = [Stimulus(user=u) for u in ("Paris is the capital of France", "Rivers run to the sea")]
    point = find_best_condition_point(llama, tok, pos, neg, v, layers=[0, 1])
    sims = prompt_similarities(llama, tok, pos + neg, v, [point.layer])[point.layer]
    predicted = (sims > point.threshold) if point.comparator == ">" else (sims < point.threshold)
    rows = [render(s, tok) for s in pos + neg]
    b = left_pad([r.ids for r in rows], tok.pad_token_id)
    base = logits(llama, b)
    cond = Condition(v, layer=point.layer, threshold=point.threshold, comparator=point.comparator)
    with steer(llama, [SteerSpec(v, coeff=4.0, layers=[2], condition=cond)]):
        out = logits(llama, b)
    changed = ((out - base).abs().amax(dim=(1, 2)) > 1e-4).numpy()
    assert changed.tolist() == predicted.tolist()


def _prompt_sims(model, b, v, layer):
    """CAST similarity of each row's mean prompt state, computed here from a plain capture."""
    with capture(model, [f"resid_post.{layer}"]) as acts:
        logits(model, b)
    c = torch.as_tensor(v.direction(layer))
    m = b.attention_mask.bool()
    out = []
    for i in range(m.shape[0]):
        hbar = acts[f"resid_post.{layer}"][i][m[i]].mean(0)
        proj = (hbar @ c) * c
        out.append(float(torch.nn.functional.cosine_similarity(hbar, torch.tanh(proj), dim=0)))
    return out


def test_parse_rule_precedence_and_errors():
    from repe.control.conditional import Ref, Rule, RuleAnd, RuleNot, RuleOr, parse_rule

    assert parse_rule("if C1 or C2 then B1") == Rule(RuleOr((Ref("C1"), Ref("C2"))), ("B1",))
    # not > and > or; behaviours by "," or "and"; optional else
    r = parse_rule("IF a or not b and c THEN x, y else z and w")
    assert r == Rule(
        RuleOr((Ref("a"), RuleAnd((RuleNot(Ref("b")), Ref("c"))))), ("x", "y"), ("z", "w")
    )
    assert parse_rule("if (a or b) and c then x").condition == RuleAnd(
        (RuleOr((Ref("a"), Ref("b"))), Ref("c"))
    )
    for bad, msg in (
        ("C1 then B1", "expected 'if'"),
        ("if C1 then", "at the end"),
        ("if C1 or then B1", "expected a name, found 'then'"),
        ("if (C1 then B1", "expected '\\)'"),
        ("if C1 then B1 B2", "unexpected 'B2'"),
        ("if C1 & C2 then B1", "cannot parse rule"),
    ):
        with pytest.raises(RepeError, match=msg):
            parse_rule(bad)


def test_rules_gate_each_row_by_boolean_logic(llama, tok):
    from repe import multisteer
    from repe.control import AllOf, AnyOf, Not

    texts = TEXTS + ["Left padding puts pad tokens before the text", "I hated the hotel"]
    b = batch(tok, texts)
    v1, v2 = rand_vector(llama, seed=1), rand_vector(llama, seed=2)
    s1, s2 = np.array(_prompt_sims(llama, b, v1, 0)), np.array(_prompt_sims(llama, b, v2, 0))
    # thresholds between rows, so that the two conditions split the batch differently
    t1 = float(np.sort(s1)[1:3].mean())
    t2 = float(np.sort(s2)[2:4].mean())
    c1, c2 = Condition(v1, 0, t1), Condition(v2, 0, t2, comparator="<")
    g1, g2 = s1 > t1, s2 < t2
    assert g1.sum() == 2 and g2.sum() == 3  # both gates are mixed over the batch

    sa = SteerSpec(rand_vector(llama, seed=3), coeff=3.0, layers=[1, 2])
    sb = SteerSpec(rand_vector(llama, seed=4), coeff=-3.0, layers=[2])
    base = logits(llama, b)
    with steer(llama, [sa]):
        only_a = logits(llama, b)
    with steer(llama, [sb]):
        only_b = logits(llama, b)
    conds, behs = {"C1": c1, "C2": c2}, {"A": sa, "B": sb}

    def check(out, use_a, use_b):
        for i in range(len(texts)):
            assert not (use_a[i] and use_b[i])
            want = only_a[i] if use_a[i] else only_b[i] if use_b[i] else base[i]
            torch.testing.assert_close(out[i], want, atol=1e-5, rtol=1e-5)

    none = np.zeros(len(texts), bool)
    for rule, expr in (
        ("if C1 or C2 then A", g1 | g2),
        ("if C1 and C2 then A", g1 & g2),
        ("if not C1 then A", ~g1),
        ("if C1 and not (C2 or C1) then A", none),
    ):
        with multisteer(llama, rule, conds, behs):
            check(logits(llama, b), expr, none)
    with multisteer(llama, "if C1 or C2 then A else B", conds, behs):
        check(logits(llama, b), g1 | g2, ~(g1 | g2))
    # the same gates built directly with AnyOf/AllOf/Not and the operators
    for gate, expr in (
        (AnyOf((c1, c2)), g1 | g2),
        (c1 & ~c2, g1 & ~g2),
        (Not(AllOf((c1, c2))), ~(g1 & g2)),
    ):
        with steer(llama, [SteerSpec(sa.vector, 3.0, layers=[1, 2], condition=gate)]):
            check(logits(llama, b), expr, none)
    # a condition read at a later block than the steered one cannot gate it
    late = Condition(v1, 2, t1)

    def enter(*args):
        with multisteer(llama, *args):
            pass

    with pytest.raises(RepeError, match="condition layer 2 comes after steered layer 1"):
        enter("if C1 or L then A", {"C1": c1, "L": late}, behs)
    with pytest.raises(RepeError, match=r"unknown conditions \['C3'\]"):
        enter("if C3 then A", conds, behs)
    with pytest.raises(RepeError, match="unknown behaviour 'Z'"):
        enter("if C1 then Z", conds, behs)
    with pytest.raises(VectorMismatchError, match="hidden size 48"):
        enter("if W then A", {"W": Condition(np.ones(48), 0, 0.0)}, behs)
    assert_no_hooks(llama)


def test_gguf_round_trip_applies_with_identical_logits(llama, tok, tmp_path):
    """Export -> import a llama.cpp control vector, apply it: identical logits to the original,
    and equal to llama.cpp's semantics (direction.k added to block k's output at every real
    token), computed here with a plain lm-kit edit."""
    from lm_kit.hooks import Fn, edit
    from repe import export_gguf, import_gguf

    b = batch(tok, TEXTS)
    v = rand_vector(llama, layers=(1, 2))
    p = export_gguf(v, tmp_path / "cv.gguf", coeff=1.0, units="raw")
    w = import_gguf(p, llama)
    with steer(llama, [SteerSpec(v, coeff=1.0, units="raw")]):
        a = logits(llama, b)
    with steer(llama, [SteerSpec(w, coeff=1.0, units="raw")]):
        c = logits(llama, b)
    assert torch.equal(a, c)
    real = b.attention_mask.bool()[..., None]

    def adder(d):
        return Fn(lambda h: h + real * torch.as_tensor(d))

    with edit(llama, {f"resid_post.{k}": adder(v.write[k][0]) for k in (1, 2)}):
        ref = logits(llama, b)
    torch.testing.assert_close(a[real[..., 0]], ref[real[..., 0]], atol=1e-5, rtol=1e-5)
    # unit-normalised export at coeff 2 == steering with coeff 2 in unit units
    q = import_gguf(export_gguf(v, tmp_path / "u.gguf", coeff=2.0, units="unit"), llama)
    with steer(llama, [SteerSpec(q, coeff=1.0, units="raw")]):
        e = logits(llama, b)
    with steer(llama, [SteerSpec(v, coeff=2.0, units="unit")]):
        f = logits(llama, b)
    torch.testing.assert_close(e, f, atol=1e-5, rtol=1e-5)


def test_load_vector_for_another_model_or_layers_fails_clearly(llama, gpt2, tmp_path):
    # another hidden size: the error names both sizes
    p = save_vector(rand_vector(llama, d=48), tmp_path / "d48.safetensors")
    with pytest.raises(VectorMismatchError, match="hidden size 48 does not match .* 32"):
        load_vector(p, llama)
    # same width, another model: config hash (strict=False only warns)
    p = save_vector(rand_vector(llama), tmp_path / "llama.safetensors")
    with pytest.raises(VectorMismatchError, match="config hash .*strict=False"):
        load_vector(p, gpt2)
    with pytest.warns(UserWarning, match="config hash"):
        load_vector(p, gpt2, strict=False)
    # layers the model does not have (3 blocks: 0..2)
    p = save_vector(rand_vector(llama, layers=(1, 5)), tmp_path / "l5.safetensors")
    with pytest.raises(VectorMismatchError, match=r"layers \[5\] but the model has blocks 0..2"):
        load_vector(p, llama)


def test_custom_operator_and_bf16(llama, tok):
    b = batch(tok, TEXTS)
    v = rand_vector(llama)
    with steer(llama, [SteerSpec(v, coeff=2.5, layers=[1])]):
        want = logits(llama, b)

    def my_add(h, v_hat, a, m):  # the closed form of `add`, written here
        return h + a * v_hat

    with steer(llama, [SteerSpec(v, coeff=2.5, layers=[1], operator=my_add)]):
        got = logits(llama, b)
    # same result, and pads are restored outside the mask (my_add also edits pads)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(RepeError, match="must return a tensor of shape"):
        _enter_logits(llama, b, [SteerSpec(v, layers=[1], operator=lambda h, v, a, m: h[..., :3])])
    assert_no_hooks(llama)
    # bf16: hooks cast per dtype; add at c=0 is exact and c != 0 moves the logits
    import copy

    m16 = copy.deepcopy(llama).to(torch.bfloat16)
    base = logits(m16, b)
    with steer(m16, [SteerSpec(v, coeff=0.0)]):
        assert torch.equal(logits(m16, b), base)
    with steer(m16, [SteerSpec(v, coeff=3.0)]):
        out = logits(m16, b)
    assert out.dtype == torch.bfloat16 and (out - base).abs().max() > 1e-2


def _enter_logits(model, b, specs):
    with steer(model, specs):
        logits(model, b)


def test_right_padded_generate_is_refused(llama, tok):
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    t = max(len(r) for r in rows)
    ids = torch.tensor([r + [tok.pad_token_id] * (t - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (t - len(r)) for r in rows])
    v = rand_vector(llama)
    with steer(llama, [SteerSpec(v, coeff=1.0, layers=[1])]):
        with torch.no_grad():  # a plain right-padded forward is fine (pads are not steered)
            llama(input_ids=ids, attention_mask=mask)
        with pytest.raises(RepeError, match="padding_side='left'"):
            llama.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=2, pad_token_id=tok.pad_token_id
            )
    assert_no_hooks(llama)
