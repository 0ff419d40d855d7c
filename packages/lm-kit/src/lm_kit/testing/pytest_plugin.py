"""pytest fixtures shared by every package of the workspace (auto-registered via ``pytest11``).

* ``tiny_tok``: in-process BPE tokenizer (pad ``<pad>``=0, BOS ``<s>``=1, EOS ``</s>``=2).
* ``tiny_llama``: ``(model, tokenizer)``, 4-layer d=64 random Llama (session scoped; hooks are
  always removed, don't mutate weights).
* ``tiny_models``: factory ``tiny_models(family, **kw) -> model`` for the six families (cached).
* ``fake_openai``: a started :class:`~lm_kit.testing.fake_openai.FakeOpenAIServer` on 127.0.0.1
  (echo replies; add ``Rule`` s to ``server.rules``), stopped after the test.
* ``smollm2``: ``(model, tokenizer)`` SmolLM2-135M-Instruct offline, loaded once per session
  (mark tests using it ``@pytest.mark.slow``).

Imports are lazy so that the plugin costs nothing for packages that don't use it.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_tok() -> Any:
    from lm_kit.tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_models() -> Any:
    from lm_kit.tiny import tiny_model

    cache: dict[tuple, Any] = {}

    def make(family: str = "llama", **kw: Any) -> Any:
        key = (family, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = tiny_model(family, **kw)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_llama(tiny_models: Any, tiny_tok: Any) -> tuple[Any, Any]:
    return tiny_models("llama"), tiny_tok


@pytest.fixture(scope="session")
def smollm2() -> tuple[Any, Any]:
    from lm_kit.loading import load_model

    return load_model("smollm2")


@pytest.fixture
def fake_openai() -> Any:
    from lm_kit.testing.fake_openai import FakeOpenAIServer

    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()
