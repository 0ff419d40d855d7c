"""Optional in-process vLLM backend (needs ``vllm``; not installed by default, GPU expected).

Same interface as the other clients. Requests arriving within ``window_ms`` go to one
``LLM.generate`` call (run in a worker thread) with a *fresh* ``SamplingParams`` per request,
so one request's settings never leak into another's (delphi's ``Offline`` mutates one shared
object). Chat prompts are rendered with the engine tokenizer's chat template.

Untested here: this machine has no vLLM; the unit test drives the adapter with a stand-in
module that mimics vLLM's documented ``LLM``/``SamplingParams``/``RequestOutput`` shapes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from lm_kit.llm.client import BaseLLMClient, settle_in_thread
from lm_kit.llm.errors import LogprobsUnavailable
from lm_kit.llm.meter import UsageMeter, current_stage
from lm_kit.llm.types import Completion, GenParams, Message, TokenLogprob


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise ImportError(
            "VLLMOfflineClient needs vLLM: `uv pip install vllm` (Linux + CUDA), "
            "or use TransformersClient / OpenAICompatClient against a vLLM server instead"
        ) from e
    return vllm


@dataclass
class _Job:
    prompt: str
    params: GenParams
    future: asyncio.Future[Completion]
    t_submit: float = field(default_factory=time.perf_counter)


class VLLMOfflineClient(BaseLLMClient):
    """``LLMClient`` over ``vllm.LLM`` in this process.

    Args:
        model: a model id/path for ``vllm.LLM(model=...)``, or an existing ``vllm.LLM``.
        window_ms: how long to collect requests before one ``generate`` call.
        **engine_kw: passed to ``vllm.LLM`` (e.g. ``gpu_memory_utilization=0.8``).
    """

    json_modes = ("prompt",)

    def __init__(
        self,
        model: Any,
        *,
        window_ms: float = 20.0,
        name: str | None = None,
        meter: UsageMeter | None = None,
        **engine_kw: Any,
    ) -> None:
        super().__init__(meter)
        self._vllm = _import_vllm()
        self.llm = self._vllm.LLM(model=model, **engine_kw) if isinstance(model, str) else model
        self.model = name or (model if isinstance(model, str) else type(model).__name__)
        self.window_s = window_ms / 1000.0
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"VLLMOfflineClient(model={self.model!r})"

    def sampling_params(self, p: GenParams, *, seed: int | None) -> Any:
        """A fresh ``SamplingParams`` for one request."""
        kw: dict[str, Any] = {
            "n": 1,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "seed": seed,
        }
        if p.stop:
            kw["stop"] = list(p.stop)
        if p.logprobs:
            kw["logprobs"] = max(p.top_logprobs, 1)
        if p.extra_body:
            kw.update(dict(p.extra_body))  # e.g. prompt_logprobs
        return self._vllm.SamplingParams(**kw)

    async def _chat(
        self, messages: list[Message], params: GenParams, json_mode: str | None = None
    ) -> Completion:
        tok = self.llm.get_tokenizer()
        text = tok.apply_chat_template(
            [m.to_dict() for m in messages], tokenize=False, add_generation_prompt=True
        )
        return await self._submit(text, params)

    async def _complete(self, prompt: str, params: GenParams) -> Completion:
        return await self._submit(prompt, params)

    async def _submit(self, prompt: str, params: GenParams) -> Completion:
        stage_name = current_stage()
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run_worker())
        fut: asyncio.Future[Completion] = loop.create_future()
        assert self._queue is not None
        self._queue.put_nowait(_Job(prompt, params, fut))
        comp = await fut
        self._meter.record(
            self.model,
            prompt_tokens=comp.prompt_tokens,
            completion_tokens=comp.completion_tokens,
            latency_s=comp.latency_s,
            stage_name=stage_name,
        )
        return comp

    async def _run_worker(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            jobs = [await queue.get()]
            await asyncio.sleep(self.window_s)
            while not queue.empty():
                jobs.append(queue.get_nowait())
            jobs = [j for j in jobs if not j.future.done()]
            if not jobs:
                continue
            await settle_in_thread(jobs, self._generate)

    def _generate(self, jobs: list[_Job]) -> list[Completion]:
        sps = []
        for j in jobs:
            seed = None
            if j.params.temperature > 0:
                base = j.params.seed if j.params.seed is not None else 0
                seed = (base * 1_000_003 + j.params.sample_index) & 0x7FFFFFFF
            sps.append(self.sampling_params(j.params, seed=seed))
        outputs = self.llm.generate([j.prompt for j in jobs], sampling_params=sps, use_tqdm=False)
        return [self._to_completion(o, j.params) for o, j in zip(outputs, jobs, strict=True)]

    def _to_completion(self, out: Any, params: GenParams) -> Completion:
        o = out.outputs[0]
        if params.logprobs and o.logprobs is None:
            raise LogprobsUnavailable(self.model, "vllm offline")
        logprobs = None
        if params.logprobs and o.logprobs is not None:
            logprobs = []
            for tid, pos in zip(o.token_ids, o.logprobs, strict=False):
                ranked = sorted(pos.items(), key=lambda kv: -kv[1].logprob)
                top = {
                    (lp.decoded_token if lp.decoded_token is not None else str(t)): float(
                        lp.logprob
                    )
                    for t, lp in ranked[: params.top_logprobs]
                }
                chosen = pos[tid]
                token = chosen.decoded_token if chosen.decoded_token is not None else str(tid)
                logprobs.append(TokenLogprob(token, float(chosen.logprob), top, token_id=int(tid)))
        finish = (
            o.finish_reason
            if o.finish_reason in ("stop", "length")
            else (o.finish_reason or "stop")
        )
        return Completion(
            text=o.text,
            finish_reason=finish,
            logprobs=logprobs,
            prompt_tokens=len(out.prompt_token_ids or []),
            completion_tokens=len(o.token_ids),
            model=self.model,
            raw=out,
        )

    async def aclose(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._worker = None
