"""The one async interface every LLM backend implements, and ``make_client``.

>>> client = make_client("http://127.0.0.1:8000/v1", model="gpt-4o-mini", api_key_env="OPENAI_API_KEY")
>>> client = make_client("local:smollm2")          # in-process transformers backend
>>> out = await client.chat([Message.user("Hi")], GenParams(max_tokens=16))
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from lm_kit.llm import jsonout
from lm_kit.llm.meter import UsageMeter
from lm_kit.llm.types import (
    Completion,
    GenParams,
    Message,
    MessageLike,
    Request,
    as_messages,
)

RequestLike = Request | str | Sequence[MessageLike]


@runtime_checkable
class LLMClient(Protocol):
    """Async LLM client: chat, plain completion, ordered batch ``map``, usage, close."""

    model: str

    async def chat(
        self, messages: Sequence[MessageLike] | str, params: GenParams | None = None
    ) -> Completion: ...

    async def complete(self, prompt: str, params: GenParams | None = None) -> Completion: ...

    async def map(
        self,
        requests: Iterable[RequestLike],
        *,
        params: GenParams | None = None,
        return_exceptions: bool = False,
        progress: bool | str = False,
    ) -> list[Any]: ...

    @property
    def usage(self) -> UsageMeter: ...

    async def aclose(self) -> None: ...


def _check_params(params: Any) -> GenParams:
    if params is None:
        return GenParams()
    if not isinstance(params, GenParams):
        raise TypeError(
            f"params must be a GenParams, got {type(params).__name__}; e.g. "
            "GenParams(max_tokens=64) (or GenParams(**your_dict))"
        )
    return params


def as_request(item: RequestLike, params: GenParams | None = None) -> Request:
    """``Request`` as is; a ``str`` is a completion prompt; a list of messages is a chat."""
    if isinstance(item, Request):
        return item
    if isinstance(item, str):
        return Request.complete(item, params)
    if isinstance(item, (Message, Mapping)) or not isinstance(item, Iterable):
        raise TypeError(
            "each request must be a Request, a prompt str, or a list of messages, got "
            f"{type(item).__name__}"
        )
    return Request.chat(item, params)


class _PendingJob(Protocol):
    future: asyncio.Future[Completion]
    t_submit: float


async def settle_in_thread(
    jobs: Sequence[_PendingJob], generate: Callable[[Any], list[Completion]]
) -> None:
    """Run ``generate(jobs)`` in a worker thread and resolve each job's future with its result.

    A failure is forwarded to every waiting job; jobs cancelled meanwhile are left alone. Each
    job needs ``future`` and ``t_submit`` (its latency is measured from submission).
    """
    try:
        results = await asyncio.to_thread(generate, jobs)
    except Exception as e:  # noqa: BLE001 - forwarded to every waiter
        for j in jobs:
            if not j.future.done():
                j.future.set_exception(e)
        return
    for j, comp in zip(jobs, results, strict=True):
        if not j.future.done():
            comp.latency_s = time.perf_counter() - j.t_submit
            j.future.set_result(comp)


class BaseLLMClient:
    """Shared behaviour: message coercion, JSON outputs, ``map``, async context manager.

    Backends implement ``_chat(messages, params, json_mode)`` and ``_complete(prompt, params)``
    and list the JSON modes they support, best first, in ``json_modes``.
    """

    model: str = ""
    json_modes: tuple[str, ...] = ("prompt",)

    def __init__(self, meter: UsageMeter | None = None) -> None:
        self._meter = meter if meter is not None else UsageMeter()

    # -- backend hooks ----------------------------------------------------------------------
    async def _chat(
        self, messages: list[Message], params: GenParams, json_mode: str | None = None
    ) -> Completion:
        raise NotImplementedError

    async def _complete(self, prompt: str, params: GenParams) -> Completion:
        raise NotImplementedError

    # -- public API ---------------------------------------------------------------------------
    @property
    def usage(self) -> UsageMeter:
        return self._meter

    async def chat(
        self, messages: Sequence[MessageLike] | str, params: GenParams | None = None
    ) -> Completion:
        msgs = as_messages(messages)
        params = _check_params(params)
        if params.response_format is not None:
            return await jsonout.chat_json(self, msgs, params)
        return await self._chat(msgs, params, None)

    async def complete(self, prompt: str, params: GenParams | None = None) -> Completion:
        if not isinstance(prompt, str):
            raise TypeError(
                f"prompt must be a str, got {type(prompt).__name__}; use chat() for messages"
            )
        params = _check_params(params)
        if params.response_format is not None:
            return await jsonout.complete_json(self, prompt, params)
        return await self._complete(prompt, params)

    async def map(
        self,
        requests: Iterable[RequestLike],
        *,
        params: GenParams | None = None,
        return_exceptions: bool = False,
        progress: bool | str = False,
    ) -> list[Any]:
        """Run many requests concurrently (the client's own limits apply); results in input order.

        With ``return_exceptions=False`` the first failure cancels the rest and is raised.
        """
        if isinstance(requests, (str, Request)) or not isinstance(requests, Iterable):
            raise TypeError(
                "map() needs a list of requests (Request objects, prompt strings or message "
                f"lists), got {type(requests).__name__}"
            )
        if params is not None:
            _check_params(params)
        reqs = [as_request(r, params) for r in requests]

        async def one(r: Request) -> Completion:
            if r.messages is not None:
                return await self.chat(list(r.messages), r.params)
            assert r.prompt is not None
            return await self.complete(r.prompt, r.params)

        tasks = [asyncio.ensure_future(one(r)) for r in reqs]
        bar = None
        if progress and tasks:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(tasks), desc=progress if isinstance(progress, str) else self.model)
            for t in tasks:
                t.add_done_callback(lambda _t: bar.update(1))
        try:
            return list(await asyncio.gather(*tasks, return_exceptions=return_exceptions))
        except BaseException:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            if bar is not None:
                bar.close()

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> BaseLLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def make_client(target: str, **kw: Any) -> LLMClient:
    """Build a client from a target string.

    - ``"http://host:port/v1"`` / ``"https://..."``: :class:`OpenAICompatClient` (pass ``model=``,
      ``api_key_env=``, and any other constructor argument).
    - ``"local:<spec>"``: load ``<spec>`` with :func:`lm_kit.loading.load_model` (``"smollm2"``, a
      folder, a GGUF file, a hub id) and wrap it in :class:`TransformersClient`. ``dtype=`` and
      ``device=`` go to the loader, the rest to the client.
    - ``"vllm:<model>"``: in-process vLLM (needs the ``vllm`` extra).
    """
    if not isinstance(target, str) or not target:
        raise ValueError(
            "make_client needs a target string such as 'http://127.0.0.1:8000/v1' or 'local:smollm2'"
        )
    if target.startswith(("http://", "https://")):
        from lm_kit.llm.openai_compat import OpenAICompatClient

        if "model" not in kw:
            raise ValueError(f"make_client({target!r}) needs model='<model name served there>'")
        return OpenAICompatClient(base_url=target, **kw)
    if target.startswith("local:"):
        spec = target[len("local:") :]
        if not spec:
            raise ValueError(
                "local: needs a model spec, e.g. 'local:smollm2' or 'local:/path/to/model'"
            )
        if "model" in kw:
            raise ValueError(
                f"make_client({target!r}) takes the model from the spec after 'local:'; drop "
                "model= (use name= to change the name in usage rows and cache keys)"
            )
        from lm_kit.llm.local import TransformersClient
        from lm_kit.loading import load_model

        load_kw = {k: kw.pop(k) for k in ("dtype", "device", "revision") if k in kw}
        model, tok = load_model(spec, **load_kw)
        kw.setdefault("name", spec)
        return TransformersClient(model, tok, **kw)
    if target.startswith("vllm:"):
        from lm_kit.llm.vllm_offline import VLLMOfflineClient

        return VLLMOfflineClient(target[len("vllm:") :], **kw)
    raise ValueError(
        f"unknown client target {target!r}; use 'http(s)://host/v1' (OpenAI-compatible server), "
        "'local:<model spec>' (transformers) or 'vllm:<model>' (in-process vLLM)"
    )
