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
