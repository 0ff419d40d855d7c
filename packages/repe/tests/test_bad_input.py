"""Bad input: every case raises a RepeError subclass naming the problem and the fix (or, in the
CLI, prints one 'error: ...' line and exits 1) instead of a traceback from numpy/torch/json or
silently wrong output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from repe import (
    Condition,
    ContrastPair,
    RepReader,
    SteerSpec,
    fit_reading_vector,
    load_pairs_jsonl,
    load_vector,
    pairs_from_lists,
    save_vector,
    steer,
)
from repe.cli import app
from repe.control import gaussian
from repe.errors import (
    LayerError,
    PairDataError,
    RepeError,
    VectorFileError,
    VectorMismatchError,
)
from repe.finders import fit_direction
from repe.io import export_gguf, from_steering_vectors, from_svec
from repe.sites import normalise_layers
from repe.synthetic import planted_pairs
from repe.vector import ReadingVector
from typer.testing import CliRunner

PLANTED = planted_pairs(n=20, d=8)


def vec(d=16, layers=(0, 1, 2), seed=0, model=None) -> ReadingVector:
    from repe.sites import model_identity

    rng = np.random.default_rng(seed)
    write = {layer: rng.standard_normal((1, d)).astype(np.float32) for layer in layers}
    return ReadingVector(
        write=write,
        read={k: w / np.linalg.norm(w) for k, w in write.items()},
        mu={k: np.zeros(d, np.float32) for k in layers},
        calibration={k: {"diff_norm": 2.0} for k in layers},
        meta={"site": "resid_post", **({"model": model_identity(model)} if model else {})},
    )


# --- finders and the reader ------------------------------------------------------------------
@pytest.mark.parametrize("method", ["pca_k", "pca_pm", "pca_repe"])
@pytest.mark.parametrize("k", [0, -1])
def test_k_below_one_is_refused(method, k):
    with pytest.raises(PairDataError, match="must be an integer >= 1"):
        fit_direction(method, PLANTED.pos, PLANTED.neg, k=k)


@pytest.mark.parametrize("method", ["pca_pm", "pca_repe"])
def test_k_above_the_hidden_size_is_refused(method):
    # was: pca_pm silently returned 8 of 9 components, pca_repe a scikit-learn error
    with pytest.raises(PairDataError, match="only 8 dimensions; pass k <= 8"):
        fit_direction(method, PLANTED.pos, PLANTED.neg, k=9)


def test_reader_score_checks_fit_layer_and_width():
    with pytest.raises(RepeError, match="not fitted yet"):
        RepReader().score(PLANTED.pos)
    r = RepReader().fit({1: PLANTED.pos}, {1: PLANTED.neg})
    with pytest.raises(LayerError, match=r"no direction fitted at layer 2; .* \[1\]"):
        r.score({2: PLANTED.pos})
    with pytest.raises(VectorMismatchError, match="hidden size 8"):
        r.score({1: PLANTED.pos[:, :4]})
    with pytest.raises(PairDataError, match="empty evaluation data"):
        r.evaluate({1: np.zeros((0, 8))}, {1: np.zeros((0, 8))})
    with pytest.raises(RepeError, match="n_boot"):
        RepReader(n_boot=0)


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        ("x", "'x' is not a layer number"),
        ("", "is not a layer number"),
        ("2-1", "empty layer range"),
        ([1.5], "not an integer block index"),
        ([True], "not an integer block index"),
    ],
)
def test_bad_layer_specs_name_the_valid_range(layers, match):
    with pytest.raises(LayerError, match=match) as e:
        normalise_layers(layers, 3)
    assert "valid layers are 0..2" in str(e.value)


def test_fit_options_are_checked_before_any_forward(tok, llama):
    pairs = pairs_from_lists(["good", "nice", "great"], ["bad", "awful", "poor"])
    for kw, match in (
        ({"split": -0.5}, r"split .* \[0, 1\)"),
        ({"split": float("nan")}, r"split .* \[0, 1\)"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"n_boot": 0}, "n_boot"),
        ({"method": "pca_k", "k": 0}, "k .* must be an integer >= 1"),
    ):
        with pytest.raises(RepeError, match=match):
            fit_reading_vector(llama, tok, pairs, **kw)


# --- steering ----------------------------------------------------------------------------------
def _run(model, tok, specs):
    ids = torch.tensor([tok("The movie was good")["input_ids"]])
    with torch.no_grad(), steer(model, specs):
        model(input_ids=ids, attention_mask=torch.ones_like(ids))


@pytest.mark.parametrize(
    ("spec_kw", "match"),
    [
        ({"coeff": float("nan")}, "coeff.* must be a finite number"),
        ({"coeff": float("inf")}, "coeff.* must be a finite number"),
        ({"coeff": "a"}, "coeff.* must be a number"),
        ({"schedule": {0: float("nan")}}, "layer 0: non-finite coefficient"),
        ({"component": 3}, "component 3 is out of range"),
    ],
)
def test_bad_steering_coefficients(tok, llama, spec_kw, match):
    # was: NaN logits (silently), or a ValueError/IndexError from deep inside
    with pytest.raises(RepeError, match=match):
        _run(llama, tok, [SteerSpec(vec(32, model=llama), layers=[0], **spec_kw)])


def test_bad_steering_objects(tok, llama):
    with pytest.raises(RepeError, match="sigma must be a finite number > 0"):
        gaussian(1, 0)
    with pytest.raises(RepeError, match="not a ReadingVector"):
        _run(llama, tok, [SteerSpec(np.zeros(32))])
    with pytest.raises(RepeError, match="wrap each vector as"):
        _run(llama, tok, [vec(32, model=llama)])
    v = vec(32, model=llama)
    with pytest.raises(RepeError, match="condition direction is zero"):
        _run(llama, tok, [SteerSpec(v, layers=[1], condition=Condition(np.zeros(32), 0, 0.1))])
    with pytest.raises(RepeError, match="threshold must be a finite number"):
        cond = Condition(np.ones(32), 0, float("nan"))
        _run(llama, tok, [SteerSpec(v, layers=[1], condition=cond)])
    v.write[0][0, 0] = np.nan  # mutated after construction
    with pytest.raises(RepeError, match=r"NaN or Inf at layers \[0\]"):
        _run(llama, tok, [SteerSpec(v, layers=[0])])


# --- vectors and vector files -------------------------------------------------------------------
def test_reading_vector_checks_shapes_and_values():
    w = {0: np.ones((1, 4))}
    with pytest.raises(VectorMismatchError, match=r"centre mu at layer 0 has shape \(3,\)"):
        ReadingVector(write=w, read=w, mu={0: np.ones(3)})
    with pytest.raises(RepeError, match="write vector at layer 0 contains NaN"):
        ReadingVector(write={0: np.full((1, 4), np.nan)}, read=w, mu={})
    with pytest.raises(VectorMismatchError, match=r"shape \(1, 1, 4\)"):
        ReadingVector(write={0: np.ones((1, 1, 4))}, read={0: np.ones((1, 1, 4))}, mu={})
    with pytest.raises(VectorMismatchError, match="has no layers"):
        _ = ReadingVector(write={}, read={}, mu={}).hidden_size
    with pytest.raises(RepeError, match="divide a vector by 0"):
        vec() / 0
    with pytest.raises(RepeError, match="finite number"):
        vec() * float("nan")


def test_unreadable_vector_files(tmp_path):
    p = save_vector(vec(), tmp_path / "v.safetensors")
    data = p.read_bytes()
    (tmp_path / "garbage.safetensors").write_bytes(b"hello world garbage")
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    for path, match in (
        (tmp_path / "nope.safetensors", "does not exist; check the path"),
        (tmp_path, "is not a file"),
        (tmp_path / "garbage.safetensors", "not a readable .safetensors file"),
        (tmp_path / "trunc.safetensors", "not a readable .safetensors file"),
    ):
        with pytest.raises(VectorFileError, match=match):
            load_vector(path)
    with pytest.raises(VectorFileError, match="folder .* does not exist"):
        save_vector(vec(), tmp_path / "no_dir" / "v.safetensors")
    with pytest.raises(RepeError, match="coeff must be a finite number"):
        export_gguf(vec(), tmp_path / "v.gguf", float("nan"), [1])
    with pytest.raises(VectorFileError, match="folder .* does not exist"):
        export_gguf(vec(), tmp_path / "no_dir" / "v.gguf", 1.0, [1])


def _tamper(tmp_path, name, meta_update=None, tensors_update=None):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    p = save_vector(vec(), tmp_path / "src.safetensors")
    with safe_open(str(p), framework="np") as f:
        meta = json.loads(f.metadata()["repe"])
    tensors = {**load_file(str(p)), **(tensors_update or {})}
    out = tmp_path / name
    save_file(tensors, str(out), metadata={"repe": json.dumps({**meta, **(meta_update or {})})})
    return out


@pytest.mark.parametrize(
    ("meta", "tensors", "match"),
    [
        ({"hidden_size": 32}, None, "'hidden_size' says 32 but tensors have 16"),
        ({"hidden_size": "16"}, None, "'hidden_size' must be a positive integer"),
        ({"calibration": [1, 2]}, None, "'calibration' must be a JSON object"),
        ({"signs": {"0": "x"}}, None, "'signs'/'calibration' must map layer numbers"),
        ({"model": "x"}, None, "'model' must be a JSON object"),
        (None, {"foo.0": np.ones(16, np.float32)}, "unexpected tensor name 'foo.0'"),
        (None, {"mu.0": np.ones(8, np.float32)}, r"centre mu at layer 0 has shape \(8,\)"),
        (None, {"write.0": np.full((1, 16), np.nan, np.float32)}, "contains NaN"),
    ],
)
def test_damaged_vector_file_metadata_and_tensors(tmp_path, meta, tensors, match):
    with pytest.raises(VectorFileError, match=match):
        load_vector(_tamper(tmp_path, "bad.safetensors", meta, tensors))


def test_vector_file_without_layers(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "empty.safetensors"
    meta = {"schema_version": 1, "hidden_size": 4, "site": "resid_post"}
    save_file({}, str(p), metadata={"repe": json.dumps({**meta, "layer_index": "block_0based"})})
    with pytest.raises(VectorFileError, match="holds no write.L"):
        load_vector(p)


def test_importers_on_bad_files(tmp_path):
    (tmp_path / "a.svec").write_text('{"directions": {"0": [1, 2], "x": [1, 2]}}')
    with pytest.raises(VectorFileError, match="key 'x' is not a layer number"):
        from_svec(tmp_path / "a.svec")
    (tmp_path / "b.svec").write_text('{"directions": {"0": [1, 2], "1": "ab"}}')
    with pytest.raises(VectorFileError, match="layer '1' is not a numeric vector"):
        from_svec(tmp_path / "b.svec")
    with pytest.raises(VectorFileError, match="does not exist"):
        from_steering_vectors(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a torch file")
    with pytest.raises(VectorFileError, match="not a readable torch.save file"):
        from_steering_vectors(tmp_path / "bad.pt")


# --- contrast pairs ------------------------------------------------------------------------------
def test_bad_pair_files(tmp_path):
    with pytest.raises(PairDataError, match="does not exist"):
        load_pairs_jsonl(str(tmp_path / "nope.jsonl"))
    cases = {
        '{"positive": "a", "negative": "b"}\n{oops\n': r":2: not valid JSON",
        "[1, 2]\n": r":1: expected a JSON object",
        '{"positive": {"user": 1}, "negative": "b"}\n': "must be strings",
    }
    for i, (text, match) in enumerate(cases.items()):
        p = tmp_path / f"bad{i}.jsonl"
        p.write_text(text)
        with pytest.raises(PairDataError, match=match):
            load_pairs_jsonl(str(p))
    with pytest.raises(PairDataError, match="string or a repe.Stimulus, got int"):
        ContrastPair(1, 2)


# --- CLI: one line, exit 1 ------------------------------------------------------------------------
def test_cli_bad_input_is_one_line(tmp_path):
    runner = CliRunner()
    v = save_vector(vec(), tmp_path / "v.safetensors")
    (tmp_path / "ab.jsonl").write_text('{"question": "q", "answer_a": "a"}\n')
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    cases = [
        (["train", "tiny", str(tmp_path / "nope.jsonl")], "does not exist"),
        (["export-gguf", str(tmp_path / "nope.safetensors"), "o.gguf"], "does not exist"),
        (["export-gguf", str(v), str(tmp_path / "o.gguf"), "--layers", "a-b"], "--layers 'a-b'"),
        (["export-gguf", str(v), str(tmp_path / "o.gguf"), "--layers", "7"], "no layer 7"),
        (["export-gguf", str(v), str(tmp_path / "o.gguf"), "--coeff", "nan"], "finite"),
        (["eval", "ab", "tiny", str(tmp_path / "bad.jsonl")], ":1: not valid JSON"),
        (["eval", "ab", "tiny", str(tmp_path / "ab.jsonl")], "lacks string field(s)"),
        (["eval", "mc", "tiny", str(tmp_path / "nope.jsonl")], "does not exist"),
        (["eval", "mc", "tiny", str(tmp_path / "bad.jsonl"), "--reduce", "max"], "--reduce"),
        (["steer", "tiny", str(v), "--prompt", "hi", "--max-new-tokens", "0"], ">= 1"),
        (
            [
                "eval",
                "sweep",
                "tiny",
                str(v),
                "--prompt",
                "p",
                "--pos-words",
                "a",
                "--neg-words",
                "b",
                "--neutral",
                str(tmp_path / "n.txt"),
                "--coeffs",
                "1,x",
            ],
            "--coeffs '1,x'",
        ),  # fmt: skip
    ]
    for args, needle in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 1, (args, r.output, r.exception)
        assert r.stderr.startswith("error: ") and needle in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_auroc_refuses_non_finite_scores():
    from repe.errors import NonFiniteActivationError
    from repe.metrics import auroc

    assert auroc(np.array([2.0, 3.0]), np.array([1.0, 2.0])) == 0.875  # (1 + 1 + 1 + 0.5) / 4
    with pytest.raises(NonFiniteActivationError, match="1 positive, 0 negative"):
        auroc(np.array([np.nan, 3.0]), np.array([1.0, 2.0]))
