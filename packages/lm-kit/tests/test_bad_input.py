"""Bad input gets a clear error naming the problem and the fix (or a warning), never a deep
traceback from torch/transformers/httpx or silently wrong output."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from lm_kit.errors import EditError, ModelNotFoundError, SiteError
from lm_kit.hookpoints import resolve
from lm_kit.hooks import Ablate, Add, Fn, Replace, Scale, assert_no_hooks, capture, edit
from lm_kit.llm import GenParams, Message, Request, RetriesExhausted, make_client
from lm_kit.llm.local import TransformersClient
from lm_kit.llm.meter import PriceTable
from lm_kit.llm.openai_compat import OpenAICompatClient
from lm_kit.llm.retry import RetryPolicy
from lm_kit.loading import load_model, resolve_device, resolve_dtype
from lm_kit.testing.fake_openai import FakeOpenAIServer, Fault, Rule

ONE_TRY = RetryPolicy(max_attempts=1)


@pytest.fixture
def batch(tiny_llama):
    model, tok = tiny_llama
    return model, tok(["The capital of France is", "hi"], return_tensors="pt", padding=True)


# -- loading -----------------------------------------------------------------------------------


def test_broken_model_folders_raise_model_not_found(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match=r"could not load the model folder .*broken.*JSON"):
        load_model(broken)
    no_type = tmp_path / "no_type"
    no_type.mkdir()
    (no_type / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="model_type"):
        load_model(no_type)


def test_bad_spec_types_and_empty_spec():
    with pytest.raises(TypeError, match="needs a model spec string or path, got NoneType"):
        load_model(None)  # type: ignore[arg-type]
    with pytest.raises(ModelNotFoundError, match="spec is empty.*smollm2"):
        load_model("  ")


def test_bad_dtype_and_device():
    with pytest.raises(ValueError, match="not a floating-point dtype"):
        resolve_dtype(torch.int8, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"unknown device 'gpu'.*'cuda:<index>'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available.*device='cpu'"):
            load_model("tiny", device="cuda")
    assert resolve_device("cpu") == torch.device("cpu")


# -- hookpoints / capture ---------------------------------------------------------------------


def test_resolve_and_capture_on_a_non_module():
    with pytest.raises(TypeError, match="torch.nn.Module.*got str"):
        resolve("tiny", "resid_post.0")  # type: ignore[arg-type]


def test_capture_bad_arguments(tiny_llama):
    model, _ = tiny_llama
    with pytest.raises(SiteError, match="site name, a Site, or a list.*got int"):
        capture(model, 5)
    with pytest.raises(ValueError, match=r"capture\(dtype='fp16'\) must be a torch.dtype"):
        capture(model, "resid_post.0", dtype="fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"capture\(to='gpu'\) is not a device"):
        capture(model, "resid_post.0", to="gpu")
    assert_no_hooks(model)


# -- edit ops ---------------------------------------------------------------------------------


def test_edit_ops_validate_their_arguments():
    d = 64
    with pytest.raises(EditError, match="Add.v must be a torch.Tensor, got list"):
        Add([1.0] * d)  # type: ignore[arg-type]
    with pytest.raises(EditError, match="Add.v contains NaN"):
        Add(torch.full((d,), float("nan")))
    with pytest.raises(EditError, match="Add.v is complex"):
        Add(torch.ones(d, dtype=torch.complex64))
    with pytest.raises(EditError, match="Add.coef must be a real number"):
        Add(torch.ones(d), coef="2")  # type: ignore[arg-type]
    with pytest.raises(EditError, match="Ablate.v has norm 0.0.*non-zero"):
        Ablate(torch.zeros(d))
    with pytest.raises(EditError, match=r"one direction of shape \[d\], got shape \(2, 64\)"):
        Ablate(torch.ones(2, d))
    with pytest.raises(EditError, match="Replace.t must be a torch.Tensor, got float"):
        Replace(0.0)  # type: ignore[arg-type]
    with pytest.raises(EditError, match="Scale.c must be a real number"):
        Scale("2")  # type: ignore[arg-type]
    with pytest.raises(EditError, match="Fn.f must be a function"):
        Fn(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("positions", "message"),
    [
        (-1, "is negative"),
        (True, "not a position spec"),
        (1.5, "not a position spec"),
        ("respnse", "not a position spec.*'response'"),
        (slice(-3, None), "int bounds >= 0"),
        (slice(2, 1), r"selects no position \(stop <= start\)"),
        (slice(0, None, 2), "step 1"),
        (set(), "is empty"),
        ({1.5}, "contains 1.5"),
        ({-1}, "contains -1"),
        (iter([1, 2]), "one-shot iterator"),
        (torch.tensor(1), "not a position spec"),
    ],
)
def test_bad_positions_are_refused_when_the_op_is_built(positions, message):
    with pytest.raises(EditError, match=message):
        Add(torch.ones(4), positions=positions)


def test_valid_position_kinds_still_work(batch):
    model, b = batch
    v = torch.ones(model.config.hidden_size)
    with capture(model, "mlp_out.1") as base:
        model(**b)
    for spec in ({0, 2}, [0, 2], (0, 2), torch.tensor([0, 2]), np.array([0, 2])):
        with edit(model, {"mlp_out.1": Add(v, positions=spec)}), capture(model, "mlp_out.1") as got:
            model(**b)
        changed = (got["mlp_out.1"] - base["mlp_out.1"]).abs().amax(-1) > 0.5
        assert changed[0].nonzero().flatten().tolist() == [0, 2], spec
    assert_no_hooks(model)


def test_positions_beyond_every_sequence_warn(batch):
    model, b = batch
    v = torch.ones(model.config.hidden_size)
    with (
        pytest.warns(UserWarning, match=r"positions=1000\).*never applied.*had 6 tokens"),
        edit(model, {"mlp_out.1": Add(v, positions=1000)}),
    ):
        model(**b)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with edit(model, {"mlp_out.1": Add(v, positions=slice(5, None))}):
            model(**b)  # position 5 exists: no warning


def test_wrong_width_vectors_name_the_site_and_the_widths(batch):
    model, b = batch
    d = model.config.hidden_size
    for op in (Add(torch.ones(d + 1)), Ablate(torch.ones(d + 2)), Replace(torch.ones(d + 2))):
        with (
            pytest.raises(
                EditError,
                match=rf"at site 'resid_post.1' has a vector of width \d+, but the activation there has width {d}",
            ),
            edit(model, {"resid_post.1": op}),
        ):
            model(**b)
    with (
        pytest.raises(EditError, match=r"Add at site 'resid_post.1' cannot be applied.*broadcast"),
        edit(model, {"resid_post.1": Add(torch.ones(3, d))}),
    ):
        model(**b)
    assert_no_hooks(model)


def test_edit_needs_a_mapping(tiny_llama):
    model, _ = tiny_llama
    with pytest.raises(TypeError, match=r"edit\(\) needs a dict \{site: op\}"):
        edit(model, [("resid_post.1", Scale(2.0))])  # type: ignore[arg-type]


# -- LLM parameters and requests --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "exc", "message"),
    [
        ({"max_tokens": 1.5}, TypeError, "max_tokens must be an int"),
        ({"max_tokens": None}, TypeError, "max_tokens must be an int"),
        ({"temperature": "0.5"}, TypeError, "temperature must be a number"),
        ({"temperature": float("nan")}, ValueError, "temperature must be finite"),
        ({"top_p": float("inf")}, ValueError, "top_p must be finite"),
        ({"stop": [1]}, ValueError, "stop strings must be non-empty str"),
        ({"stop": ""}, ValueError, "stop strings must be non-empty str"),
        ({"seed": "x"}, TypeError, "seed must be an int"),
        ({"extra_body": [1]}, TypeError, "extra_body must be a dict"),
    ],
)
def test_genparams_rejects_bad_values(kw, exc, message):
    with pytest.raises(exc, match=message):
        GenParams(**kw)


def test_genparams_accepts_numpy_numbers():
    p = GenParams(max_tokens=np.int64(5), temperature=np.float32(0.5), seed=np.int64(1))
    assert p.key_dict()["max_tokens"] == 5


def test_bad_requests_and_params_types():
    with pytest.raises(TypeError, match="Request.prompt must be a str"):
        Request(prompt=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="messages must be a str or a list.*got NoneType"):
        Request.chat(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="wrap the single message in a list"):
        Request.chat(Message.user("hi"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="price for 'm' must be"):
        PriceTable({"m": 3})  # type: ignore[dict-item]


def test_client_constructor_rejects_malformed_arguments(monkeypatch):
    monkeypatch.setenv("LMKIT_BAD_KEY", "k")
    ok = {"api_key_env": "LMKIT_BAD_KEY"}
    for url, message in [
        ("http://", "has no valid host"),
        ("http://127.0.0.1:notaport/v1", "is malformed"),
        ("http://[::1/v1", "is malformed"),
        (None, "must start with http"),
    ]:
        with pytest.raises(ValueError, match=message):
            OpenAICompatClient(url, "m", **ok)  # type: ignore[arg-type]
    u = "http://127.0.0.1:1/v1"
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
        OpenAICompatClient(u, "m", timeout=-1, **ok)
    with pytest.raises(TypeError, match="max_concurrency must be an int"):
        OpenAICompatClient(u, "m", max_concurrency=1.5, **ok)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry must be a RetryPolicy"):
        OpenAICompatClient(u, "m", retry={"max_attempts": 2}, **ok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_key_env must be the name"):
        OpenAICompatClient(u, "m", api_key_env=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be a str"):
        OpenAICompatClient(u, 3, **ok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown cache mode 'onyl'"):
        OpenAICompatClient(u, "m", cache_mode="onyl", **ok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="takes the model from the spec"):
        make_client("local:tiny", model="x")


@pytest.mark.parametrize(
    ("body", "call", "message"),
    [
        ({"choices": [{"message": {"content": 5}}]}, "chat", "answer text is int"),
        ({"choices": [{"text": None}]}, "complete", "answer text is NoneType"),
        (
            {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "abc"}},
            "chat",
            "malformed response body.*invalid literal",
        ),
        ({"choices": [{"message": {"content": "x"}}], "usage": [1]}, "chat", "malformed"),
    ],
)
def test_malformed_answers_are_clear_errors(monkeypatch, body, call, message):
    monkeypatch.setenv("LMKIT_BAD_KEY", "k")

    async def go(url):
        client = OpenAICompatClient(url, "fake-model", api_key_env="LMKIT_BAD_KEY", retry=ONE_TRY)
        try:
            if call == "chat":
                return await client.chat("hi")
            return await client.complete("hi")
        finally:
            await client.aclose()

    rules = [Rule(faults=[Fault(status=200, body=body, times=None)])]
    with FakeOpenAIServer(rules) as server, pytest.raises(RetriesExhausted, match=message):
        asyncio.run(go(server.url))


def test_client_call_arguments(monkeypatch):
    monkeypatch.setenv("LMKIT_BAD_KEY", "k")

    async def go(url):
        client = OpenAICompatClient(url, "fake-model", api_key_env="LMKIT_BAD_KEY", retry=ONE_TRY)
        try:
            with pytest.raises(TypeError, match="params must be a GenParams, got dict"):
                await client.chat("hi", {"max_tokens": 3})  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="map\\(\\) needs a list of requests.*got str"):
                await client.map("hello")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="each request must be a Request.*got int"):
                await client.map([3])  # type: ignore[list-item]
            assert await client.map([]) == []
        finally:
            await client.aclose()

    with FakeOpenAIServer() as server:
        asyncio.run(go(server.url))
        assert not server.requests


def test_local_client_bad_arguments(tiny_llama):
    model, tok = tiny_llama
    with pytest.raises(
        TypeError, match="needs a causal LM with a generate\\(\\) method.*LlamaModel"
    ):
        TransformersClient(model.model, tok)
    with pytest.raises(TypeError, match="needs the model's Hugging Face tokenizer"):
        TransformersClient(model, None)
    with pytest.raises(TypeError, match="max_batch must be an int"):
        TransformersClient(model, tok, max_batch=2.5)  # type: ignore[arg-type]
