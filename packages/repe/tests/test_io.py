"""Vector files, GGUF round trips and importers (independent readers where possible)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from repe.errors import RepeError, VectorFileError, VectorMismatchError
from repe.io import (
    export_gguf,
    from_repeng,
    from_steering_vectors,
    from_svec,
    import_gguf,
    load_vector,
    read_metadata,
    save_vector,
)
from repe.vector import ReadingVector


def make_vector(d=16, layers=(1, 2, 3), seed=0) -> ReadingVector:
    rng = np.random.default_rng(seed)
    write = {layer: rng.standard_normal((1, d)).astype(np.float32) for layer in layers}
    read = {layer: w / np.linalg.norm(w) for layer, w in write.items()}
    mu = {layer: rng.standard_normal(d).astype(np.float32) for layer in layers}
    return ReadingVector(
        write=write,
        read=read,
        mu=mu,
        signs={layer: 1 for layer in layers},
        calibration={layer: {"diff_norm": float(np.linalg.norm(write[layer]))} for layer in layers},
        meta={"site": "resid_post", "model": {"model_type": "llama", "config_sha256": "abc"}},
    )


def test_safetensors_round_trip_exact(tmp_path):
    v = make_vector()
    p = save_vector(v, tmp_path / "v.safetensors")
    w = load_vector(p)
    assert w.layers == v.layers
    for layer in v.layers:
        assert np.array_equal(w.write[layer], v.write[layer])
        assert np.array_equal(w.read[layer], v.read[layer])
        assert np.array_equal(w.mu[layer], v.mu[layer])
    assert w.calibration[1]["diff_norm"] == v.calibration[1]["diff_norm"]
    assert w.signs == v.signs
    # the metadata is plain JSON readable by safetensors alone
    from safetensors import safe_open

    with safe_open(str(p), framework="np") as f:
        meta = json.loads(f.metadata()["repe"])
        assert set(f.keys()) == {
            f"{k}.{layer}" for k in ("write", "read", "mu") for layer in (1, 2, 3)
        }
    assert meta["layer_index"] == "block_0based" and meta["hidden_size"] == 16


def test_corrupt_metadata_names_the_key(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "bad.safetensors"
    save_file(
        {"write.1": np.zeros((1, 4), np.float32), "read.1": np.zeros((1, 4), np.float32)},
        str(p),
        metadata={
            "repe": json.dumps(
                {"schema_version": 1, "site": "resid_post", "layer_index": "block_0based"}
            )
        },
    )
    with pytest.raises(VectorFileError, match="'hidden_size'"):
        read_metadata(p)
    save_file({"x": np.zeros(2, np.float32)}, str(p))
    with pytest.raises(VectorFileError, match="not a repe vector file"):
        load_vector(p)


def test_gguf_round_trip_and_independent_reader(tmp_path):
    import gguf

    v = make_vector(layers=(1, 2, 5))
    p = export_gguf(v, tmp_path / "cv.gguf", coeff=1.5, units="unit")
    r = gguf.GGUFReader(str(p))
    arch = r.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "controlvector"
    count = r.fields["controlvector.layer_count"]
    assert int(count.parts[count.data[0]][0]) == 3
    names = sorted(t.name for t in r.tensors)
    assert names == ["direction.1", "direction.2", "direction.5"]
    back = import_gguf(p)
    for layer in (1, 2, 5):
        expected = 1.5 * v.write[layer][0] / np.linalg.norm(v.write[layer][0])
        np.testing.assert_allclose(back.write[layer][0], expected, rtol=1e-6)
    # raw units export exactly the stored write vectors: import(export(v)) == v bit for bit
    p2 = export_gguf(v, tmp_path / "raw.gguf", coeff=1.0, units="raw")
    back2 = import_gguf(p2)
    for layer in v.layers:
        assert np.array_equal(back2.write[layer], v.write[layer])


def test_gguf_export_refusals(tmp_path):
    v = make_vector(layers=(0, 1))
    with pytest.raises(RepeError, match="direction.0"):
        export_gguf(v, tmp_path / "a.gguf")
    export_gguf(v, tmp_path / "a.gguf", drop_layer0=True)
    assert sorted(import_gguf(tmp_path / "a.gguf").layers) == [1]
    with pytest.raises(RepeError, match="only add"):
        export_gguf(v, tmp_path / "b.gguf", drop_layer0=True, operator="ablate")
    with pytest.raises(RepeError, match="every position"):
        export_gguf(v, tmp_path / "b.gguf", drop_layer0=True, positions="response")
    v.meta["site"] = "mlp_out"
    with pytest.raises(RepeError, match="resid_post"):
        export_gguf(v, tmp_path / "b.gguf", drop_layer0=True)


def test_gguf_import_checks(tmp_path):
    import gguf

    def write(name, tensors):
        w = gguf.GGUFWriter(str(tmp_path / name), "controlvector")
        for k, t in tensors.items():
            w.add_tensor(k, t)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return tmp_path / name

    p = write(
        "uneq.gguf", {"direction.1": np.ones(4, np.float32), "direction.2": np.ones(5, np.float32)}
    )
    with pytest.raises(VectorFileError, match="unequal lengths"):
        import_gguf(p)
    p = write("f16.gguf", {"direction.1": np.ones(4, np.float16)})
    with pytest.raises(VectorFileError, match="F32"):
        import_gguf(p)
    p = write("zero.gguf", {"direction.0": np.ones(4, np.float32)})
    with pytest.warns(UserWarning, match="direction.0"):
        import_gguf(p)
    p = write("ok.gguf", {"direction.3": np.ones(4, np.float32)})
    with pytest.raises(VectorMismatchError, match="hidden size 4 but 8"):
        import_gguf(p, hidden_size=8)


def test_importers(tmp_path):
    import torch

    class FakeRepeng:  # duck-typed like repeng.ControlVector
        model_type = "llama"
        directions = {3: np.arange(4, dtype=np.float32), 5: -np.arange(4, dtype=np.float32)}

    v = from_repeng(FakeRepeng())
    assert v.layers == [3, 5] and v.site == "resid_post"
    assert np.array_equal(v.write[3][0], np.arange(4, dtype=np.float32))

    sv = {"layer_activations": {2: torch.ones(4)}, "layer_type": "decoder_block"}
    torch.save(sv, tmp_path / "sv.pt")
    v = from_steering_vectors(tmp_path / "sv.pt")
    assert v.layers == [2] and v.site == "resid_post"
    assert from_steering_vectors({"layer_activations": {1: torch.ones(4)}}, "mlp").site == "mlp_out"
    with pytest.raises(VectorFileError, match="layer_type"):
        from_steering_vectors(sv, "attention")

    (tmp_path / "x.svec").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "directions": {"4": [1.0, 0.0, 0.0]},
                "explained_variances": {"4": 0.5},
            }
        )
    )
    v = from_svec(tmp_path / "x.svec")
    assert v.layers == [4] and v.site == "resid_pre"


def test_vector_arithmetic():
    a, b = make_vector(seed=0), make_vector(seed=1)
    c = a + b
    np.testing.assert_allclose(c.write[1], a.write[1] + b.write[1], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(c.read[1]), 1.0, rtol=1e-6)
    np.testing.assert_allclose((a - a).write[2], 0.0)
    np.testing.assert_allclose((2 * a).write[3], 2 * a.write[3])
    np.testing.assert_allclose((a / 4).write[3], a.write[3] / 4)
    with pytest.raises(VectorMismatchError, match="hidden size 16 and 8"):
        _ = a + make_vector(d=8)
