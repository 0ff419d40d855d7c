"""Bad input gives clear errors naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sae_core
import torch
from sae_core import SAEConfig, SparseCoder
from sae_core.errors import ConfigError, FormatError, ShapeError
from safetensors.numpy import save_file


def _sparsify(tmp_path, cfg_edit=None, shape_edit=None):
    folder = tmp_path / "layers.0"
    folder.mkdir(parents=True)
    t = {
        "encoder.weight": np.zeros((16, 8), np.float32),
        "encoder.bias": np.zeros(16, np.float32),
        "W_dec": np.zeros((16, 8), np.float32),
        "b_dec": np.zeros(8, np.float32),
    }
    if shape_edit:
        t.update(shape_edit)
    save_file(t, str(folder / "sae.safetensors"))
    cfg = {"d_in": 8, "k": 4, "num_latents": 16}
    if cfg_edit:
        cfg = cfg_edit(cfg)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


def test_missing_cfg_field(tmp_path):
    with pytest.raises(ConfigError, match=r"missing required field\(s\) \['k'\]"):
        sae_core.load(
            _sparsify(tmp_path, cfg_edit=lambda c: {k: v for k, v in c.items() if k != "k"})
        )


def test_wrong_d_in(tmp_path):
    with pytest.raises(
        ShapeError, match=r"encoder.weight has shape \(16, 8\), expected \(num_latents, d_in=12\)"
    ):
        sae_core.load(_sparsify(tmp_path, cfg_edit=lambda c: {**c, "d_in": 12}))


def test_wrong_weight_shape(tmp_path):
    with pytest.raises(ShapeError, match=r"'b_enc' has shape \(15,\), expected \(16,\)"):
        sae_core.load(_sparsify(tmp_path, shape_edit={"encoder.bias": np.zeros(15, np.float32)}))


def test_nan_weights_and_bad_k(tmp_path):
    with pytest.raises(ShapeError, match="NaN"):
        sae_core.load(_sparsify(tmp_path, shape_edit={"b_dec": np.full(8, np.nan, np.float32)}))
    with pytest.raises(ConfigError, match="k must be in 1..n_latents=16"):
        SAEConfig(d_in=8, n_latents=16, activation="topk", k=17)
    with pytest.raises(ConfigError, match="unknown activation"):
        SAEConfig(d_in=8, n_latents=16, activation="softmax")


def test_unknown_layout_and_ambiguity(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="no known SAE layout"):
        sae_core.load(tmp_path / "empty")
    root = tmp_path / "root"
    _sparsify(root)
    with pytest.raises(FormatError, match=r"sub-folders \['layers.0'\]"):
        sae_core.load(root)
    assert sae_core.load(root, hookpoint="layers.0").cfg.k == 4
    with pytest.raises(FormatError, match="hookpoint 'layers.9' not found"):
        sae_core.load(root, hookpoint="layers.9")


def test_input_width_mismatch():
    sae = SparseCoder(SAEConfig(d_in=8, n_latents=16, activation="topk", k=2, site="resid_post.3"))
    with pytest.raises(ShapeError, match="input width 9 does not match the coder's d_in=8"):
        sae.encode(torch.zeros(2, 9))


# ---------------------------------------------------------------- weight files and configs
def _saelens(tmp_path, cfg_edit=None, tensors=None):
    folder = tmp_path / "saelens"
    folder.mkdir()
    t = {
        "W_enc": np.zeros((8, 16), np.float32),
        "b_enc": np.zeros(16, np.float32),
        "W_dec": np.zeros((16, 8), np.float32),
        "b_dec": np.zeros(8, np.float32),
    }
    t.update(tensors or {})
    save_file(t, str(folder / "sae_weights.safetensors"))
    cfg = {"d_in": 8, "d_sae": 16, "architecture": "standard"}
    (folder / "cfg.json").write_text(json.dumps(cfg_edit(cfg) if cfg_edit else cfg))
    return folder


def test_weight_matrix_that_is_not_2d(tmp_path):
    with pytest.raises(ShapeError, match=r"'encoder.weight' has shape \(16,\), expected a matrix"):
        sae_core.load(
            _sparsify(tmp_path / "a", shape_edit={"encoder.weight": np.zeros(16, np.float32)})
        )
    with pytest.raises(ShapeError, match=r"'W_dec' has shape \(16,\), expected a matrix"):
        sae_core.load(_saelens(tmp_path, tensors={"W_dec": np.zeros(16, np.float32)}))


def test_config_fields_of_the_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match=r"field 'k' must be a whole number, got 'four'"):
        sae_core.load(_sparsify(tmp_path / "a", cfg_edit=lambda c: {**c, "k": "four"}))
    with pytest.raises(ConfigError, match=r"field 'k' must be a whole number, got 2.5"):
        sae_core.load(_sparsify(tmp_path / "b", cfg_edit=lambda c: {**c, "k": 2.5}))
    with pytest.raises(ConfigError, match=r"field 'sae_core' must be a JSON object, got list"):
        sae_core.load(_sparsify(tmp_path / "c", cfg_edit=lambda c: {**c, "sae_core": [1]}))
    with pytest.raises(ConfigError, match=r"field 'metadata' must be a JSON object"):
        sae_core.load(_saelens(tmp_path, cfg_edit=lambda c: {**c, "metadata": "x"}))


def test_damaged_gemmascope_and_dictlearn_files(tmp_path):
    g = tmp_path / "g"
    g.mkdir()
    (g / "params.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(FormatError, match="params.npz .*damaged or not an .npz archive"):
        sae_core.load(g)
    d = tmp_path / "d"
    d.mkdir()
    torch.save(torch.zeros(3), d / "ae.pt")
    with pytest.raises(FormatError, match="holds a Tensor, not a state dict"):
        sae_core.load(d)
    (d / "ae.pt").unlink()
    sd = {
        "encoder.weight": torch.zeros(16, 8),
        "encoder.bias": torch.zeros(16),
        "bias": torch.zeros(8),
    }
    torch.save(sd, d / "ae.pt")
    with pytest.raises(
        ShapeError, match=r"missing tensors \['decoder.weight'\] for class AutoEncoder"
    ):
        sae_core.load(d)


def test_hub_id_that_cannot_be_downloaded(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*a, **kw):
        raise OSError("no network")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FormatError, match="'nope/missing' is not a local folder and could not be"):
        sae_core.load("nope/missing")


def test_save_into_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    sae = SparseCoder(SAEConfig(d_in=8, n_latents=16, activation="topk", k=2))
    with pytest.raises(FormatError, match="is a file; save into a folder"):
        sae_core.save(sae, tmp_path / "f", "saelens")


def test_sae_config_field_types():
    with pytest.raises(ConfigError, match="k must be an integer, got 2.0"):
        SAEConfig(d_in=8, n_latents=16, k=2.0)
    with pytest.raises(ConfigError, match="batchtopk_mode must be 'threshold' or 'batch'"):
        SAEConfig(d_in=8, n_latents=16, activation="batchtopk", k=2, batchtopk_mode="x")
    with pytest.raises(ConfigError, match="exclude_tokens must be a list of token ids"):
        SAEConfig(d_in=8, n_latents=16, k=2, exclude_tokens=3)
    with pytest.raises(ConfigError, match=r"missing required field\(s\) \['d_in'\]"):
        SAEConfig.from_dict({"n_latents": 16, "k": 2})


# ---------------------------------------------------------------- encode / decode input
def _topk_sae():
    torch.manual_seed(0)
    sae = SparseCoder(SAEConfig(d_in=8, n_latents=16, activation="topk", k=2))
    with torch.no_grad():
        sae.W_enc.normal_()
        sae.W_dec.normal_()
    return sae


def test_encode_refuses_nan_dtype_and_non_tensors():
    sae = _topk_sae()
    x = torch.randn(3, 8)
    x[1, 2] = float("nan")
    for fn in (sae.encode, sae.encode_sparse, sae):
        with pytest.raises(ShapeError, match=r"NaN/Inf values in 1 of 3 rows \(first: row 1\)"):
            fn(x)
    with pytest.raises(ShapeError, match=r"dtype torch.float64 .* pass x.to\(torch.float32\)"):
        sae.encode(torch.zeros(2, 8, dtype=torch.float64))
    with pytest.raises(ShapeError, match="must be a torch.Tensor .* got ndarray"):
        sae.encode(np.zeros((2, 8), np.float32))
    with pytest.raises(ShapeError, match="got a scalar"):
        sae.encode(torch.tensor(1.0))
    with pytest.raises(ConfigError, match="chunk_rows must be positive"):
        sae.encode_sparse(torch.zeros(3, 8), chunk_rows=-1)


def test_empty_batch_encodes_to_empty():
    sae = _topk_sae()
    assert sae.encode(torch.zeros(0, 8)).shape == (0, 16)
    assert sae.encode_sparse(torch.zeros(0, 8)).n_rows == 0
    from sae_core.neurons import NeuronCoder

    assert NeuronCoder(8, k=2).encode(torch.zeros(0, 8)).shape == (0, 8)


def test_decode_width_mismatch():
    sae = _topk_sae()
    with pytest.raises(ShapeError, match="have width 15 but the coder has n_latents=16"):
        sae.decode(torch.zeros(3, 15))
    codes = sae_core.SparseCodes(
        torch.tensor([0, 1]), torch.tensor([3], dtype=torch.int32), torch.tensor([1.0]), 32
    )
    with pytest.raises(ShapeError, match="sparse codes have width 32"):
        sae.decode_sparse(codes)
    with pytest.raises(ShapeError, match="fvu needs the target and the reconstruction"):
        sae_core.fvu(torch.zeros(3, 8), torch.zeros(3, 9))


def test_neuron_and_splice_errors(tiny_llama):
    from sae_core.neurons import NeuronCoder, randomized
    from sae_core.splice import splice

    model, _ = tiny_llama
    with pytest.raises(ConfigError, match="no MLP neurons at layer 9"):
        NeuronCoder.from_model(model, 9)
    with pytest.raises(ShapeError, match="latents have 9 units but the coder has 8"):
        NeuronCoder(8, k=2, rotate=True).decode(torch.zeros(2, 9))
    with pytest.raises(ConfigError, match="randomized needs a SparseCoder"):
        randomized(NeuronCoder(8, k=2))
    with pytest.raises(ConfigError, match="records no site; pass site="):
        splice(model, _topk_sae())
