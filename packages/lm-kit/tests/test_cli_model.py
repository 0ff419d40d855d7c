"""The model-side CLI commands on tiny models (the SmolLM2 demo itself: test_smollm2.py, slow)."""

from __future__ import annotations

import json

import numpy as np
from lm_kit.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def test_sites_json_lists_widths_and_tl_names():
    res = runner.invoke(app, ["sites", "tiny:gpt_neox", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout[res.stdout.index("[") :])
    by_name = {r["site"]: r for r in rows}
    assert by_name["neurons.0"]["width"] == 256 and by_name["resid_post.3"]["width"] == 64
    assert by_name["mlp_in.2"]["tl_name"] == "blocks.2.ln2.hook_normalized"
    assert "resid_mid.0" not in by_name  # parallel residual


def test_demo_on_tiny_prints_completion_sites_and_norms():
    res = runner.invoke(app, ["demo", "--model", "tiny", "--max-new-tokens", "3"])
    assert res.exit_code == 0, res.output
    assert (
        "greedy completion" in res.output
        and "resid_post.3" in res.output
        and "final_norm" in res.output
    )


def test_extract_command_writes_a_store(tmp_path):
    data = tmp_path / "docs.txt"
    data.write_text("The capital of France is Paris.\nhi\nRain falls on the hills.\n")
    res = runner.invoke(
        app, ["extract", "tiny", str(data), "--sites", "resid_post.1", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 0, res.output
    arr = np.load(tmp_path / "o" / "resid_post.1.npy")
    assert arr.shape == (3, 64) and arr.dtype == np.float16


def test_convert_gguf_missing_file_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["convert-gguf", str(tmp_path / "none.gguf")])
    assert res.exit_code == 1 and "not found" in res.output
