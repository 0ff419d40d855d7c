"""Hook sites against transformers' own hidden_states on all six families (independent reference)."""

from __future__ import annotations

import pytest
import torch
from lm_kit.hookpoints import hs_index, list_sites, resolve
from lm_kit.hooks import Add, Scale, assert_no_hooks, capture, edit
from lm_kit.tiny import FAMILIES

TEXTS = ["The capital of France is", "hi there"]


@pytest.fixture(scope="module")
def batch(tiny_tok):
    return tiny_tok(TEXTS, return_tensors="pt", padding=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_block_outputs_equal_hidden_states(family, tiny_models, batch):
    model = tiny_models(family)
    n = model.config.num_hidden_layers
    with capture(model, ["embed", "resid_pre.*", "resid_post.*", "final_norm"]) as acts:
        hs = model(**batch, output_hidden_states=True).hidden_states
    assert len(hs) == n + 1
    torch.testing.assert_close(acts["embed"], hs[0], rtol=0, atol=0)
    for i in range(n - 1):
        torch.testing.assert_close(acts[f"resid_post.{i}"], hs[i + 1], rtol=0, atol=0)
        torch.testing.assert_close(acts[f"resid_pre.{i + 1}"], hs[i + 1], rtol=0, atol=0)
    # hs[-1] is after the final norm: it equals final_norm, not the last block output
    torch.testing.assert_close(acts["final_norm"], hs[n], rtol=0, atol=0)
    assert not torch.allclose(acts[f"resid_post.{n - 1}"], hs[n])
    assert_no_hooks(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_hs_index_maps_to_the_matching_hidden_state(family, tiny_models, batch):
    model = tiny_models(family)
    n = model.config.num_hidden_layers
    assert hs_index(model, "embed") == 0
    assert hs_index(model, "resid_pre.2") == 2
    assert hs_index(model, "resid_post.0") == 1
    assert hs_index(model, "final_norm") == n
    with pytest.raises(ValueError, match="hs\\[-1\\]|final_norm"):
        hs_index(model, f"resid_post.{n - 1}")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_site_resolves_captures_and_has_the_expected_width(family, tiny_models, batch):
    model = tiny_models(family)
    cfg = model.config
    d = cfg.hidden_size
    names = list_sites(model)
    with capture(model, names) as acts:
        model(**batch)
    b, t = batch["input_ids"].shape
    for name in names:
        assert acts[name].shape[:2] == (b, t), name
    # widths from the config, independently of the probe
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or d // heads
    mlp = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * d
    assert acts["resid_post.1"].shape[-1] == d
    assert acts["mlp_out.1"].shape[-1] == d
    assert acts["attn_out.1"].shape[-1] == d
    assert acts["mlp_in.1"].shape[-1] == d
    assert acts["neurons.1"].shape[-1] == mlp
    assert acts["attn_z.1"].shape[-1] == heads * head_dim
    probed = {s.name: s.width for s in resolve(model, "neurons.*", probe=True)}
    assert set(probed.values()) == {mlp}


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2"])
def test_residual_decomposes_into_attn_and_mlp(family, tiny_models, batch):
    """resid_post = resid_pre + attn_out + mlp_out (sequential-residual families)."""
    model = tiny_models(family)
    with capture(
        model, ["resid_pre.1", "attn_out.1", "mlp_out.1", "resid_post.1", "resid_mid.1"]
    ) as a:
        model(**batch)
    torch.testing.assert_close(
        a["resid_pre.1"] + a["attn_out.1"], a["resid_mid.1"], rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        a["resid_mid.1"] + a["mlp_out.1"], a["resid_post.1"], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_coefficient_zero_edit_is_identity(family, tiny_models, batch):
    model = tiny_models(family)
    ref = model(**batch).logits
    v = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    with edit(model, {"resid_post.1": Add(v, coef=0.0), "mlp_out.*": Scale(1.0)}):
        got = model(**batch).logits
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    with edit(model, {"resid_post.1": Add(v, coef=3.0)}):
        moved = model(**batch).logits
    assert (moved - ref).abs().max() > 1e-3
    assert_no_hooks(model)
