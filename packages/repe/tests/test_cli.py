"""CLI round trip on lm-kit's tiny model: train -> read -> export-gguf -> --import."""

from __future__ import annotations

import json

import numpy as np
from repe.cli import app
from repe.io import import_gguf, load_vector
from typer.testing import CliRunner


def test_cli_train_read_export_import(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    good = ["wonderful", "amazing", "lovely", "great", "superb", "excellent"]
    bad = ["terrible", "awful", "horrible", "bad", "dismal", "dreadful"]
    with pairs.open("w") as f:
        for i, (g, b) in enumerate(zip(good, bad, strict=True)):
            f.write(
                json.dumps(
                    {
                        "positive": f"The movie was {g}",
                        "negative": f"The movie was {b}",
                        "group": f"g{i}",
                    }
                )
                + "\n"
            )
    runner = CliRunner()
    vec = tmp_path / "v.safetensors"
    r = runner.invoke(
        app,
        [
            "train",
            "tiny",
            str(pairs),
            "--out",
            str(vec),
            "--split",
            "0.34",
            "--figure",
            str(tmp_path / "auroc.png"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "best layer" in r.output and vec.exists() and (tmp_path / "auroc.png").exists()
    r = runner.invoke(
        app,
        [
            "read",
            "tiny",
            str(vec),
            "--pairs",
            str(pairs),
            "--text",
            "The movie was great",
            "--heatmap",
            str(tmp_path / "scan.png"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "scan.png").exists()
    gg = tmp_path / "v.gguf"
    r = runner.invoke(app, ["export-gguf", str(vec), str(gg), "--coeff", "2", "--drop-layer0"])
    assert r.exit_code == 0, r.output
    back = tmp_path / "back.safetensors"
    r = runner.invoke(app, ["export-gguf", str(gg), str(back), "--import"])
    assert r.exit_code == 0, r.output
    v, w = load_vector(vec), load_vector(back)
    assert w.layers == [x for x in v.layers if x != 0]
    for layer in w.layers:
        np.testing.assert_allclose(w.write[layer][0], 2 * v.direction(layer), rtol=1e-6)
    assert import_gguf(gg).hidden_size == v.hidden_size
