"""Hooks are always removed; bad site names and bad edits give clear errors; container types."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from lm_kit.errors import EditError, SiteError
from lm_kit.hookpoints import from_tl, resolve, to_tl
from lm_kit.hooks import (
    Ablate,
    Add,
    Fn,
    Replace,
    Scale,
    assert_no_hooks,
    capture,
    edit,
    lm_kit_hooks,
    run,
)


@pytest.fixture
def llama_batch(tiny_llama):
    model, tok = tiny_llama
    return model, tok(
        ["The capital of France is", "hi"], return_tensors="pt", padding=True, padding_side="right"
    )


def test_hooks_removed_after_exception_and_keyboard_interrupt(llama_batch):
    model, batch = llama_batch
    v = torch.ones(model.config.hidden_size)
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with (
            pytest.raises(type(exc)),
            capture(model, ["resid_post.*", "neurons.0"]),
            edit(model, {"mlp_out.1": Add(v, 2.0, positions=slice(1, None))}),
        ):
            assert len(lm_kit_hooks(model)) > 0
            model(**batch)
            raise exc
        assert_no_hooks(model)


def test_exception_inside_a_hook_removes_every_hook(llama_batch):
    model, batch = llama_batch

    def bad(h):
        raise ValueError("edit failed")

    with (
        pytest.raises(ValueError, match="edit failed"),
        capture(model, "resid_post.0"),
        edit(model, {"resid_post.2": Fn(bad)}),
    ):
        model(**batch)
    assert_no_hooks(model)


def test_assert_no_hooks_reports_a_leak(llama_batch):
    model, _ = llama_batch
    ctx = capture(model, "resid_post.1")
    ctx.__enter__()
    with pytest.raises(AssertionError, match="model.layers.1"):
        assert_no_hooks(model)
    ctx.__exit__(None, None, None)
    assert_no_hooks(model)


def test_unknown_site_lists_the_valid_ones(tiny_llama):
    model, _ = tiny_llama
    with pytest.raises(SiteError, match=r"resid_post\.\{0\.\.3\}.*final_norm"):
        resolve(model, "resid_psot.1")
    with pytest.raises(SiteError, match="out of range.*4 layers"):
        resolve(model, "resid_post.4")
    with pytest.raises(SiteError, match="no module matches"):
        resolve(model, "module:layers.0.nope")


def test_layer_specs_and_tl_names(tiny_llama):
    model, _ = tiny_llama
    assert [s.name for s in resolve(model, "mlp_out.-1")] == ["mlp_out.3"]
    assert [s.name for s in resolve(model, "attn_out.1-2")] == ["attn_out.1", "attn_out.2"]
    assert len(resolve(model, "neurons.*")) == 4
    assert resolve(model, "blocks.2.hook_resid_post")[0].name == "resid_post.2"
    assert to_tl("mlp_in.3") == "blocks.3.ln2.hook_normalized"
    for name in ("resid_pre.0", "resid_mid.2", "attn_z.1", "neurons.3", "final_norm", "mlp_out.0"):
        assert from_tl(to_tl(name)) == name
    raw = resolve(model, "module:layers.*.mlp")
    assert [s.module_path for s in raw] == [f"model.layers.{i}.mlp" for i in range(4)]
    assert raw[0].module is model.model.layers[0].mlp


def test_raw_module_site_equals_canonical(llama_batch):
    model, batch = llama_batch
    with capture(
        model, ["module:layers.1.mlp", "mlp_out.1", "module:layers.1.mlp.down_proj:in", "neurons.1"]
    ) as a:
        model(**batch)
    torch.testing.assert_close(a["module:layers.1.mlp:out"], a["mlp_out.1"], rtol=0, atol=0)
    torch.testing.assert_close(
        a["module:layers.1.mlp.down_proj:in"], a["neurons.1"], rtol=0, atol=0
    )


def test_editing_resid_mid_is_refused_and_neox_parallel_has_none(tiny_llama, tiny_models):
    model, _ = tiny_llama
    with pytest.raises(SiteError, match="read-only.*attn_out.1"):
        edit(model, {"resid_mid.1": Scale(2.0)})
    neox = tiny_models("gpt_neox")
    with pytest.raises(SiteError, match="use_parallel_residual"):
        resolve(neox, "resid_mid.0")


def test_wrong_shape_or_dtype_edit_names_the_site(llama_batch):
    model, batch = llama_batch
    with (
        pytest.raises(EditError, match="mlp_out.1"),
        edit(model, {"mlp_out.1": Fn(lambda h: h[..., :3])}),
    ):
        model(**batch)
    with (
        pytest.raises(EditError, match="float64"),
        edit(model, {"mlp_out.1": Fn(lambda h: h.double())}),
    ):
        model(**batch)
    assert_no_hooks(model)


def test_edit_ops_closed_forms(llama_batch):
    model, batch = llama_batch
    d = model.config.hidden_size
    v = torch.randn(d, generator=torch.Generator().manual_seed(3))
    with capture(model, "mlp_out.1") as base:
        model(**batch)
    h = base["mlp_out.1"]
    cases = {
        "add": (Add(v, 2.0), h + 2.0 * v),
        "scale": (Scale(-0.5), -0.5 * h),
        "replace": (Replace(v), v.expand_as(h)),
        "ablate": (Ablate(v), h - (h @ (v / v.norm()))[..., None] * (v / v.norm())),
    }
    for name, (op, expected) in cases.items():
        # capture registered after the edit sees the edited value
        with edit(model, {"mlp_out.1": op}), capture(model, "mlp_out.1") as got:
            model(**batch)
        torch.testing.assert_close(got["mlp_out.1"], expected, rtol=1e-5, atol=1e-5, msg=name)
    with edit(model, {"mlp_out.1": Ablate(v)}), capture(model, "mlp_out.1") as got:
        model(**batch)
    assert (got["mlp_out.1"] @ v).abs().max() < 1e-4


def test_position_selective_add_only_touches_selected_positions(llama_batch):
    model, batch = llama_batch  # right padding: real positions equal columns on real tokens
    v = torch.ones(model.config.hidden_size)
    with capture(model, "mlp_out.1") as base:
        model(**batch)
    with (
        edit(model, {"mlp_out.1": Add(v, 1.0, positions={0, 2})}),
        capture(model, "mlp_out.1") as got,
    ):
        model(**batch)
    diff = (got["mlp_out.1"] - base["mlp_out.1"]).abs().amax(-1)
    real = batch["attention_mask"].bool()
    expected = torch.zeros_like(real)
    expected[:, [0, 2]] = True
    assert torch.equal(diff > 0.5, expected & real)


class _TupleBlock(nn.Module):
    """A transformers-4.x style block: returns ``(hidden, extra)``."""

    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, hidden_states, attention_mask=None):
        return (hidden_states + self.lin(hidden_states), torch.zeros(1))


class _TupleModel(nn.Module):
    def __init__(self, d=8, n=3):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList([_TupleBlock(d) for _ in range(n)])

    def forward(self, x):
        for layer in self.layers:
            out = layer(x)
            assert isinstance(out, tuple), "the container type must be preserved"
            x = out[0]
        return x


def test_tuple_outputs_are_read_and_written_back_as_tuples():
    model = _TupleModel()
    x = torch.randn(2, 5, 8)
    ref = model(x)
    with capture(model, ["module:layers.1", "module:layers.2:in"]) as a:
        model(x)
    torch.testing.assert_close(a["module:layers.1:out"], a["module:layers.2:in"], rtol=0, atol=0)
    v = torch.randn(8)
    with edit(model, {"module:layers.1": Add(v, 0.0)}):
        torch.testing.assert_close(model(x), ref, rtol=0, atol=0)
    with (
        edit(model, {"module:layers.2:in": Add(v, 1.0)}),
        capture(model, "module:layers.2:in") as a2,
    ):
        model(x)
    torch.testing.assert_close(a2["module:layers.2:in"], a["module:layers.2:in"] + v)
    with edit(model, {"module:layers.1": Add(v, 1.0)}), capture(model, "module:layers.1") as a3:
        model(x)
    torch.testing.assert_close(a3["module:layers.1:out"], a["module:layers.1:out"] + v)
    assert_no_hooks(model)


def test_early_stop_returns_none_and_matches_the_full_forward(llama_batch):
    model, batch = llama_batch
    calls = []
    handle = model.model.norm.register_forward_hook(lambda *a: calls.append(1))
    try:
        with capture(model, ["resid_post.1", "attn_out.0"]) as a:
            out = run(model, **batch)
        assert out is None and not calls  # the final norm never ran
        with capture(model, "resid_post.1", stop_at=None) as full:
            out = run(model, **batch)
        assert out is not None and calls
    finally:
        handle.remove()
    torch.testing.assert_close(a["resid_post.1"], full["resid_post.1"], rtol=0, atol=0)
    with capture(model, "resid_post.0", stop_at=2) as b:  # explicit stop after block 2
        assert run(model, **batch) is None
    assert b["resid_post.0"].shape[-1] == model.config.hidden_size
    assert_no_hooks(model)


def test_nested_captures_all_filled_before_early_stop(llama_batch):
    model, batch = llama_batch
    with capture(model, "resid_post.0") as outer, capture(model, "resid_post.2") as inner:
        run(model, **batch)
    assert outer["resid_post.0"].shape == inner["resid_post.2"].shape


def test_capture_options(llama_batch):
    model, batch = llama_batch
    with capture(model, "resid_post.0", dtype=torch.float16) as a:
        model(**batch)
        model(**batch)
    assert a["resid_post.0"].dtype == torch.float16
    assert len(a.calls("resid_post.0")) == 2
    assert a["resid_post.0"].shape[1] == 2 * batch["input_ids"].shape[1]
    assert a["blocks.0.hook_resid_post"] is not None  # TL alias
    with pytest.raises(KeyError, match="not captured"):
        a["mlp_out.0"]


def test_center_transform_subtracts_the_d_model_mean(llama_batch):
    model, batch = llama_batch
    with (
        capture(model, "resid_post.1") as raw,
        capture(model, "resid_post.1", transform="center") as c,
    ):
        model(**batch)
    h = raw["resid_post.1"]
    torch.testing.assert_close(c["resid_post.1"], h - h.mean(-1, keepdim=True))
    assert c.transform == "center"


class _TwoLists(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = type("Cfg", (), {"num_hidden_layers": 2, "model_type": "custom"})()
        self.encoder = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
        self.decoder = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])


def test_block_discovery_family_path_override_and_ambiguity(tiny_models):
    from lm_kit.arch import find_blocks
    from lm_kit.errors import BlockDiscoveryError

    assert find_blocks(tiny_models("llama"))[0] == "model.layers"
    assert find_blocks(tiny_models("gpt2"))[0] == "transformer.h"
    assert find_blocks(tiny_models("gpt_neox"))[0] == "gpt_neox.layers"
    ambiguous = _TwoLists()
    with pytest.raises(BlockDiscoveryError, match=r"several.*encoder \(len 2\).*decoder \(len 2\)"):
        find_blocks(ambiguous)
    path, blocks = find_blocks(ambiguous, layers_path="decoder")
    assert path == "decoder" and blocks is ambiguous.decoder
    with pytest.raises(BlockDiscoveryError, match="not a ModuleList"):
        find_blocks(ambiguous, layers_path="nope")
