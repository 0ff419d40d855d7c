"""CLI smoke tests on hand-built coders and a tiny-model cache."""

from __future__ import annotations

import json

import numpy as np
import sae_core
import torch
from sae_core import SAEConfig, SparseCoder
from sae_core.cache import CacheConfig, cache_latents
from sae_core.cli import app, parse_count
from typer.testing import CliRunner

runner = CliRunner()


def _sae():
    s = SparseCoder(SAEConfig(d_in=64, n_latents=32, activation="topk", k=3, site="resid_post.1"))
    torch.manual_seed(1)
    with torch.no_grad():
        s.W_enc.normal_(0, 0.2)
        s.W_dec.normal_()
    return s.requires_grad_(False)


def test_parse_count():
    assert (
        parse_count("10M") == 10_000_000
        and parse_count("200k") == 200_000
        and parse_count("17") == 17
    )


def test_inspect_and_convert(tmp_path):
    sae_core.save(_sae(), tmp_path / "sp", "sparsify")
    r = runner.invoke(app, ["inspect", str(tmp_path / "sp" / "layers.1")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["site"] == "resid_post.1"
    r = runner.invoke(
        app, ["convert", str(tmp_path / "sp" / "layers.1"), str(tmp_path / "sl"), "--to", "saelens"]
    )
    assert r.exit_code == 0, r.output
    assert sae_core.detect(tmp_path / "sl") == "saelens"


def test_stats(tmp_path, tiny_llama):
    model, tok = tiny_llama
    rng = np.random.default_rng(0)
    docs = [rng.integers(4, 512, size=30).tolist() for _ in range(6)]
    out = cache_latents(
        model,
        {"resid_post.1": _sae()},
        docs,
        tmp_path / "c",
        CacheConfig(ctx=16, batch_rows=4, top_n=4, reservoir=4, window=8, progress=False),
    )
    r = runner.invoke(app, ["stats", str(out), "--plot", str(tmp_path / "d.png")])
    assert r.exit_code == 0, r.output
    line = r.output.splitlines()[0]
    assert (
        line.startswith("resid_post.1/sae:")
        and json.loads(line.split(": ", 1)[1])["n_recorded"] == 6 * 30
    )
    assert (tmp_path / "d.png").stat().st_size > 0


def test_bad_cfg_is_a_clear_error(tmp_path):
    sae_core.save(_sae(), tmp_path / "sp", "sparsify")
    cfg = tmp_path / "sp" / "layers.1" / "cfg.json"
    d = json.loads(cfg.read_text())
    del d["d_in"]
    cfg.write_text(json.dumps(d))
    r = runner.invoke(app, ["inspect", str(tmp_path / "sp" / "layers.1")])
    assert r.exit_code == 1 and "error:" in r.stderr and "d_in" in r.stderr
    assert "Traceback" not in r.output


def test_cache_command_with_progress_bar(tmp_path):
    """`sae-core cache tiny SAE --data file.txt`: one forward per batch, a tqdm bar, a readable cache
    whose recorded-token count equals the mask's (an invariant independent of the encoder)."""
    from sae_core.cache import LatentCache

    sae_core.save(_sae(), tmp_path / "sp", "sparsify")
    text = tmp_path / "docs.txt"
    text.write_text(
        "The capital of France is Paris and the capital of Italy is Rome.\n\n"
        "Hooks capture activations at each layer of the residual stream.\n\n"
        "Rain falls on the hills; rivers run to the sea.\n"
    )
    args = [
        "cache",
        "tiny",
        str(tmp_path / "sp" / "layers.1"),
        "--data",
        str(text),
        "--tokens",
        "1k",
        "--out",
        str(tmp_path / "c"),
        "--ctx",
        "16",
        "--batch-rows",
        "2",
        "--top-n",
        "4",
        "--window",
        "8",
        "--cooccurrence-bins",
        "32",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.output, r.exception)
    assert "caching latents" in r.output  # tqdm progress bar (stderr)
    c = LatentCache.open(tmp_path / "c")
    assert c.coders == ["resid_post.1/layers.1"]
    assert c.stats.n_recorded == int(c.recorded.sum()) > 0
    assert int(np.asarray(c.stats.count).sum()) == c.meta["nnz"] <= 3 * c.stats.n_recorded
    assert c.cooccurrence_sketch.shape == (c.n_latents, 32)
    assert c.jaccard(0, 0) in (0.0, 1.0)  # a latent against itself: 1, or 0 if it never fired
    r = runner.invoke(app, ["stats", str(tmp_path / "c")])
    assert r.exit_code == 0 and r.output.startswith("resid_post.1/layers.1:")
    # a site that the model lacks is a clear error, not a traceback from inside the hooks
    r = runner.invoke(
        app,
        [
            *args[:2],
            f"resid_post.9={tmp_path / 'sp' / 'layers.1'}",
            *args[3:5],
            "--ctx",
            "16",
            "--window",
            "8",
            "--out",
            str(tmp_path / "c9"),
        ],
    )
    assert r.exit_code == 1 and "does not exist" in r.stderr and "resid_post.9" in r.stderr


def test_train_sae_command_with_progress_bar(tmp_path):
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(24, 16)).astype(np.float32)
    codes = rng.exponential(size=(600, 24)).astype(np.float32) * (rng.random((600, 24)) < 0.15)
    np.save(tmp_path / "acts.npy", codes @ atoms)
    r = runner.invoke(
        app,
        [
            "train-sae",
            str(tmp_path / "acts.npy"),
            "--k",
            "4",
            "--latents",
            "32",
            "--batch-size",
            "100",
            "--epochs",
            "2",
            "--lr",
            "0.003",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 0, (r.output, r.exception)
    assert "training SAE" in r.output  # tqdm progress bar
    sae = sae_core.load(tmp_path / "o" / "sae")
    assert (sae.cfg.d_in, sae.n_latents, sae.cfg.k) == (16, 32, 4)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(32))  # decoder rows renormalised
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 16), np.float32))
    r = runner.invoke(app, ["train-sae", str(empty), "--out", str(tmp_path / "e")])
    assert r.exit_code == 1 and "empty" in r.stderr


def test_bad_data_files_are_one_line_errors(tmp_path):
    """`cache --data`: a .jsonl line without "text", with invalid JSON or a non-string text, and a
    non-UTF-8 file name the file, the line and the fix (checked before any model is loaded)."""
    sae_core.save(_sae(), tmp_path / "sp", "sparsify")
    files = {
        "nokey.jsonl": ('{"text": "a"}\n{"txt": "b"}\n', ':2: each line needs a "text" key'),
        "badjson.jsonl": ('{"text": "a"}\n{oops\n', ":2: not valid JSON"),
        "list.jsonl": ('["a"]\n', "got list"),
        "num.jsonl": ('{"text": 5}\n', '"text" must be a string, got int'),
        "bin.txt": (b"\xff\xfe\x00x", "is not UTF-8 text"),
    }
    for name, (content, needle) in files.items():
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        r = runner.invoke(
            app, ["cache", "nope-model", str(tmp_path / "sp" / "layers.1"), "--data", str(p),
                  "--out", str(tmp_path / "c")],
        )  # fmt: skip
        assert r.exit_code == 1, (name, r.output, r.exception)
        assert r.stderr.startswith("error: --data ") and needle in r.stderr, (name, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    r = runner.invoke(app, ["cache", "nope-model", "x", "--out", str(tmp_path / "c"),
                            "--tokens", "1.2.3"])  # fmt: skip
    assert r.exit_code == 2 and "not a count" in r.output and r.exception.__class__ is SystemExit


def test_train_sae_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    (tmp_path / "dir.npy").mkdir()
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    store = tmp_path / "store"
    store.mkdir()
    np.save(store / "a.npy", np.zeros((8, 4), np.float16))
    (store / "manifest.json").write_text(json.dumps({"sites": ["a"], "files": {"a": "a.npy"}}))
    cases = [
        (["nope.npy"], "nope.npy does not exist"),
        (["dir.npy"], "is not a file"),
        (["bad.npy"], "is not a readable numeric .npy array"),
        (["obj.npy"], "is not a readable numeric .npy array"),
        (["nostore"], "not an lm-kit activation store; pass a store folder or a [N, d] .npy"),
        (["store", "--site", "b"], "site 'b' is not in store"),
    ]
    for args, needle in cases:
        r = runner.invoke(
            app, ["train-sae", str(tmp_path / args[0]), *args[1:], "--out", str(tmp_path / "o")]
        )
        assert r.exit_code == 1, (args, r.output, r.exception)
        assert r.stderr.startswith("error: ") and needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.output


def test_parse_count_rejects_malformed_numbers():
    import pytest
    import typer

    for bad in ("1.2.3", ".", "lots", "-5"):
        with pytest.raises(typer.BadParameter, match="not a count"):
            parse_count(bad)
    assert parse_count("1.5k") == 1500 and parse_count(".5M") == 500_000
