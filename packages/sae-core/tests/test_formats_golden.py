"""Golden cross-format tests: hand-built and seeded weights written by the tests' own minimal writers,
loaded by sae_core, compared with an independent float64 NumPy reference (fp32 atol 1e-5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sae_core
import torch
from sae_core import SAEConfig, SparseCoder
from sae_core.convert import (
    fold_decoder_norm,
    fold_input_bias,
    fold_norm_scaling,
    site_from_hookpoint,
)
from sae_ref import random_params, ref_decode, ref_encode
from safetensors.numpy import save_file

ATOL = 1e-5
f32 = np.float32


def _w(d):
    return {k: np.ascontiguousarray(v, dtype=f32) for k, v in d.items()}


# ----------------------------------------------------------------- minimal writers (test-owned)
def write_sparsify(root, hookpoint, p, k, transcode=False, activation="topk"):
    folder = root / hookpoint
    folder.mkdir(parents=True)
    t = {
        "encoder.weight": p["W_enc"].T,
        "encoder.bias": p["b_enc"],
        "W_dec": p["W_dec"],
        "b_dec": p["b_dec"],
    }
    if "W_skip" in p:
        t["W_skip"] = p["W_skip"]
    save_file(_w(t), str(folder / "sae.safetensors"))
    cfg = {
        "expansion_factor": 1,
        "normalize_decoder": True,
        "num_latents": p["W_enc"].shape[1],
        "k": k,
        "multi_topk": False,
        "skip_connection": "W_skip" in p,
        "transcode": transcode,
        "d_in": p["W_enc"].shape[0],
        "activation": activation,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


def write_saelens(folder, p, arch, **cfg_extra):
    folder.mkdir(parents=True)
    t = dict(p)
    if arch == "gated":
        t["b_gate"] = t.pop("b_enc")
    save_file(_w(t), str(folder / "sae_weights.safetensors"))
    cfg = {
        "architecture": arch,
        "d_in": p["W_enc"].shape[0],
        "d_sae": p["W_enc"].shape[1],
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "metadata": {"hook_name": "blocks.3.hook_resid_post"},
    }
    cfg.update(cfg_extra)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


def write_gemmascope(folder, p):
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **_w(p))
    return folder


def write_dictlearn(folder, sd, trainer):
    folder.mkdir(parents=True)
    torch.save(
        {k: torch.as_tensor(np.asarray(v, dtype=f32)) for k, v in sd.items()}, folder / "ae.pt"
    )
    (folder / "config.json").write_text(json.dumps({"trainer": trainer}))
    return folder


def check(sae, p, cfg, x):
    f_ref = ref_encode(p, cfg, x)
    xt = torch.tensor(x, dtype=torch.float32)
    f = sae.encode(xt).detach().numpy()
    np.testing.assert_allclose(f, f_ref, atol=ATOL, rtol=0)
    y_ref = ref_decode(p, cfg, f_ref, x)
    np.testing.assert_allclose(
        sae.decode(torch.tensor(f_ref, dtype=torch.float32), xt).detach().numpy(),
        y_ref,
        atol=ATOL,
        rtol=1e-5,
    )
    codes = sae.encode_sparse(xt)
    np.testing.assert_allclose(codes.to_dense().numpy(), f_ref, atol=ATOL)
    assert (codes.val > 0).all(), "zeros must be dropped from sparse output"
    np.testing.assert_allclose(
        sae.decode_sparse(codes, xt).detach().numpy(),
        sae.decode(sae.encode(xt), xt).detach().numpy(),
        atol=ATOL,
    )


# ----------------------------------------------------------------- hand-built, outputs known
def test_hand_built_topk_known_output(tmp_path):
    p = {
        "W_enc": np.array([[1.0, 0, 1], [0, 1, 1]]),
        "b_enc": np.array([0, 0, -0.5]),
        "W_dec": np.array([[1.0, 0], [0, 1], [0.4, 0.4]]),
        "b_dec": np.array([0.0, 0.0]),
    }
    folder = write_sparsify(tmp_path, "layers.3", p, k=1)
    sae = sae_core.load(folder)
    x = torch.tensor([[2.0, 1.0]])
    # pre = [2, 1, 2.5]: top-1 is latent 2 with value 2.5; x̂ = 2.5·[0.4, 0.4] = [1, 1]
    codes = sae.encode_sparse(x)
    assert codes.idx.tolist() == [2] and codes.val.tolist() == [2.5]
    assert sae.decode(sae.encode(x)).tolist() == [[1.0, 1.0]]
    assert sae.cfg.site == "resid_post.3"


def test_hand_built_jumprelu_gemmascope_known_output(tmp_path):
    p = {
        "W_enc": np.array([[1.0, -1.0], [1.0, 2.0]]),
        "b_enc": np.array([0.0, 0.0]),
        "W_dec": np.array([[0.5, 0.5], [1.0, 0.0]]),
        "b_dec": np.array([0.1, 0.2]),
        "threshold": np.array([1.0, 1.0]),
    }
    folder = write_gemmascope(
        tmp_path / "gemma-scope-2b-pt-res" / "layer_5" / "width_16k" / "average_l0_8", p
    )
    sae = sae_core.load(folder)
    # no input bias: pre = [x0+x1, -x0+2x1]; x=[1,1] → [2, 1]: latent 1 sits at its threshold (not >)
    f = sae.encode(torch.tensor([[1.0, 1.0]]))
    assert f.tolist() == [[2.0, 0.0]]
    np.testing.assert_allclose(sae.decode(f).numpy(), [[1.1, 1.2]], atol=1e-6)
    assert sae.cfg.site == "resid_post.5"


# ----------------------------------------------------------------- seeded, every architecture x format
D, N = 12, 24


def _x(seed=1, rows=7):
    return np.random.default_rng(seed).normal(size=(rows, D)).astype(f32).astype(np.float64) * 2


@pytest.mark.parametrize("activation", ["topk", "groupmax"])
def test_sparsify_topk_groupmax(tmp_path, activation):
    p = random_params(np.random.default_rng(0), D, N, activation)
    sae = sae_core.load(write_sparsify(tmp_path, "layers.2", p, k=4, activation=activation))
    check(sae, p, {"activation": activation, "k": 4}, _x())


@pytest.mark.parametrize("skip", [False, True])
def test_sparsify_transcoder(tmp_path, skip):
    p = random_params(np.random.default_rng(3), D, N, "topk", skip=skip)
    sae = sae_core.load(write_sparsify(tmp_path, "layers.1.mlp", p, k=5, transcode=True))
    assert (sae.cfg.site, sae.cfg.site_out) == ("mlp_in.1", "mlp_out.1")
    check(sae, p, {"activation": "topk", "k": 5, "input_bias": "none", "transcoder": True}, _x())


SAELENS_CASES = [
    ("standard", "relu", {}),
    ("topk", "topk", {"k": 5}),
    ("topk", "topk", {"k": 5, "rescale_acts_by_decoder_norm": True}),
    ("jumprelu", "jumprelu", {}),
    ("gated", "gated", {}),
    ("standard", "relu", {"normalize_activations": "constant_norm_rescale"}),
    ("standard", "relu", {"normalize_activations": "layer_norm"}),
    ("jumprelu", "jumprelu", {"apply_b_dec_to_input": False}),
]


@pytest.mark.parametrize("arch,act,extra", SAELENS_CASES)
def test_saelens_architectures(tmp_path, arch, act, extra):
    p = random_params(np.random.default_rng(5), D, N, act)
    sae = sae_core.load(write_saelens(tmp_path / "s", p, arch, **extra))
    cfg = {
        "activation": act,
        "k": extra.get("k"),
        "norm_in": extra.get("normalize_activations", "none"),
        "rescale_by_dec_norm": extra.get("rescale_acts_by_decoder_norm", False),
        "input_bias": "b_dec" if extra.get("apply_b_dec_to_input", True) else "none",
    }
    check(sae, p, cfg, _x())


def test_saelens_expected_average_only_in_is_folded(tmp_path):
    p = random_params(np.random.default_rng(6), D, N, "relu")
    s = 3.5
    sae = sae_core.load(
        write_saelens(
            tmp_path / "s",
            p,
            "standard",
            normalize_activations="expected_average_only_in",
            norm_scaling_factor=s,
        )
    )
    x = _x()
    f_ref = ref_encode(p, {"activation": "relu"}, x * s)
    y_ref = ref_decode(p, {"activation": "relu"}, f_ref, x * s) / s
    xt = torch.tensor(x, dtype=torch.float32)
    np.testing.assert_allclose(sae.encode(xt).detach().numpy(), f_ref, atol=ATOL)
    np.testing.assert_allclose(sae.decode(sae.encode(xt)).detach().numpy(), y_ref, atol=ATOL)


def test_dictlearn_classes(tmp_path):
    rng = np.random.default_rng(7)
    p = random_params(rng, D, N, "relu")
    sae = sae_core.load(
        write_dictlearn(
            tmp_path / "a",
            {
                "encoder.weight": p["W_enc"].T,
                "encoder.bias": p["b_enc"],
                "decoder.weight": p["W_dec"].T,
                "bias": p["b_dec"],
            },
            {"dict_class": "AutoEncoder", "activation_dim": D, "dict_size": N},
        )
    )
    check(sae, p, {"activation": "relu"}, _x())
    sae = sae_core.load(
        write_dictlearn(
            tmp_path / "t",
            {
                "encoder.weight": p["W_enc"].T,
                "encoder.bias": p["b_enc"],
                "decoder.weight": p["W_dec"].T,
                "b_dec": p["b_dec"],
                "k": np.array(3),
            },
            {"dict_class": "AutoEncoderTopK", "activation_dim": D, "dict_size": N},
        )
    )
    check(sae, p, {"activation": "topk", "k": 3}, _x())
    pj = random_params(rng, D, N, "jumprelu")
    sae = sae_core.load(
        write_dictlearn(
            tmp_path / "j", pj, {"dict_class": "JumpReluAutoEncoder", "activation_dim": D}
        )
    )
    check(sae, pj, {"activation": "jumprelu", "input_bias": "none"}, _x())


def test_batchtopk_threshold_and_batch_modes():
    p = random_params(np.random.default_rng(8), D, N, "batchtopk")
    cfg = SAEConfig(d_in=D, n_latents=N, activation="batchtopk", k=3)
    sae = SparseCoder(cfg).load_canonical(
        {k: torch.tensor(v, dtype=torch.float32) for k, v in p.items()}
    )
    x = _x()
    check(sae, p, {"activation": "batchtopk", "k": 3}, x)
    sae.cfg.batchtopk_mode = "batch"
    f = sae.encode(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    a = np.maximum((x - p["b_dec"]) @ p["W_enc"] + p["b_enc"], 0)
    keep = np.sort(a.ravel())[::-1][: 3 * x.shape[0]]
    np.testing.assert_allclose(np.sort(f[f > 0])[::-1], keep[keep > 0], atol=ATOL)


# ----------------------------------------------------------------- round trips and cross-format
def _canonical(p, cfg):
    return SparseCoder(cfg).load_canonical(
        {k: torch.tensor(v, dtype=torch.float32) for k, v in p.items()}
    )


@pytest.mark.parametrize("fmt", ["sparsify", "saelens"])
def test_round_trip_exact(tmp_path, fmt):
    p = random_params(np.random.default_rng(9), D, N, "topk")
    sae = _canonical(p, SAEConfig(d_in=D, n_latents=N, activation="topk", k=4, site="resid_post.2"))
    out = sae_core.save(sae, tmp_path / fmt, fmt)
    back = sae_core.load(out)
    for name, t in sae.canonical_state().items():
        assert torch.equal(t, back.canonical_state()[name]), name
    assert back.cfg.k == 4


def test_same_sae_decodes_identically_in_every_layout(tmp_path):
    """One JumpReLU SAE (with input bias) → SAELens, Gemma Scope (bias folded); one TopK → sparsify, SAELens."""
    x = torch.tensor(_x(rows=20), dtype=torch.float32)
    pj = random_params(np.random.default_rng(10), D, N, "jumprelu")
    jr = _canonical(pj, SAEConfig(d_in=D, n_latents=N, activation="jumprelu"))
    a = sae_core.load(sae_core.save(jr, tmp_path / "sl", "saelens"))
    b = sae_core.load(sae_core.save(jr, tmp_path / "gs", "gemmascope"))
    assert b.cfg.input_bias == "none"
    for other in (a, b):
        torch.testing.assert_close(other.encode(x), jr.encode(x), atol=ATOL, rtol=0)
        torch.testing.assert_close(
            other.decode(other.encode(x)), jr.decode(jr.encode(x)), atol=ATOL, rtol=0
        )
    pt = random_params(np.random.default_rng(11), D, N, "topk")
    tk = _canonical(pt, SAEConfig(d_in=D, n_latents=N, activation="topk", k=4, input_bias="none"))
    s = sae_core.load(sae_core.save(tk, tmp_path / "sp", "sparsify", hookpoint="layers.0"))
    assert (
        s.cfg.input_bias == "b_dec"
    )  # sparsify always subtracts b_dec: the bias was unfolded exactly
    t = sae_core.load(sae_core.save(tk, tmp_path / "sl2", "saelens"))
    for other in (s, t):
        torch.testing.assert_close(other.encode(x), tk.encode(x), atol=ATOL, rtol=0)
        torch.testing.assert_close(
            other.decode(other.encode(x)), tk.decode(tk.encode(x)), atol=ATOL, rtol=0
        )


def test_foldings_are_exact():
    x = torch.tensor(_x(rows=16), dtype=torch.float32)
    for act in ("relu", "jumprelu", "gated"):
        p = random_params(np.random.default_rng(12), D, N, act)
        sae = _canonical(p, SAEConfig(d_in=D, n_latents=N, activation=act))
        folded = fold_input_bias(sae)
        torch.testing.assert_close(folded.encode(x), sae.encode(x), atol=ATOL, rtol=0)
        if act != "gated":
            dn = fold_decoder_norm(sae)
            torch.testing.assert_close(dn.dec_norms(), torch.ones(N), atol=1e-6, rtol=0)
            torch.testing.assert_close(
                dn.decode(dn.encode(x)), sae.decode(sae.encode(x)), atol=ATOL, rtol=0
            )
    p = random_params(np.random.default_rng(13), D, N, "topk")
    sae = _canonical(
        p, SAEConfig(d_in=D, n_latents=N, activation="topk", k=4, rescale_by_dec_norm=True)
    )
    dn = fold_decoder_norm(sae)
    assert not dn.cfg.rescale_by_dec_norm
    torch.testing.assert_close(dn.encode(x), sae.encode(x), atol=ATOL, rtol=0)
    torch.testing.assert_close(
        dn.decode(dn.encode(x)), sae.decode(sae.encode(x)), atol=ATOL, rtol=0
    )
    with pytest.raises(sae_core.ConfigError, match="changes which latents"):
        fold_decoder_norm(_canonical(p, SAEConfig(d_in=D, n_latents=N, activation="topk", k=4)))
    s = fold_norm_scaling(sae, 2.0)
    torch.testing.assert_close(
        s.decode(s.encode(x)), sae.decode(sae.encode(2 * x)) / 2, atol=ATOL, rtol=0
    )


def test_site_mapping():
    assert site_from_hookpoint("layers.6") == ("resid_post.6", None)
    assert site_from_hookpoint("layers.6.mlp") == ("mlp_out.6", None)
    assert site_from_hookpoint("layers.6.mlp", transcode=True) == ("mlp_in.6", "mlp_out.6")
    assert site_from_hookpoint("embed_tokens") == ("embed", None)
    assert site_from_hookpoint("h.3.attn") == ("attn_out.3", None)


def test_saelens_hook_z_reshape(tmp_path):
    """A hook_z SAE (d_in = heads * d_head) takes [..., heads, d_head], encodes the flattened vector and
    returns its reconstruction in the head shape."""
    p = random_params(np.random.default_rng(11), D, N, "relu")
    sae = sae_core.load(write_saelens(tmp_path / "z", p, "standard", reshape_activations="hook_z"))
    x = _x(rows=6)
    xh = torch.tensor(x, dtype=torch.float32).unflatten(-1, (4, D // 4))
    f = sae.encode(xh)
    cfg = {
        "activation": "relu",
        "k": None,
        "norm_in": "none",
        "rescale_by_dec_norm": False,
        "input_bias": "b_dec",
    }
    ref_f = ref_encode(p, cfg, x)
    np.testing.assert_allclose(f.numpy(), ref_f, atol=ATOL)
    y = sae.decode(f, xh)
    assert y.shape == xh.shape
    np.testing.assert_allclose(
        y.flatten(-2).numpy(), ref_decode(p, cfg, ref_f, x), atol=ATOL, rtol=1e-5
    )
