"""In-process transformers backend with the same async interface as the HTTP client.

Requests go into a queue. A worker takes whatever arrives within ``window_ms``, groups the
requests whose :class:`GenParams` are identical (apart from ``sample_index``), left-pads each
group in chunks of ``max_batch`` and runs ``model.generate`` in ``asyncio.to_thread`` so the
event loop stays responsive. One generate runs at a time.

- Temperature 0 is greedy. Otherwise each request samples with its own ``torch.Generator``
  seeded from its cache key (prompt + all parameters incl. ``seed`` and ``sample_index``), so
  a request's sample does not depend on which other requests share its batch.
- Logprobs are ``log_softmax`` of the model's raw logits at each generated position (the
  unmodified model distribution, before temperature/top-p).
- Chat prompts are built with the tokenizer's chat template (or ``chat_template=``).
- Stop strings end generation early and are cut from the text (as the OpenAI API does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import numbers
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lm_kit.llm.cache import (
    CACHE_MODES,
    CacheMode,
    ResponseCache,
    cache_key_fields,
    canonical_json,
    key_of,
)
from lm_kit.llm.client import BaseLLMClient, settle_in_thread
from lm_kit.llm.meter import UsageMeter, current_stage
from lm_kit.llm.types import Completion, GenParams, Message, TokenLogprob

log = logging.getLogger(__name__)


@dataclass
class _Job:
    prompt_text: str
    add_special_tokens: bool
    params: GenParams
    seed: int
    future: asyncio.Future[Completion]
    t_submit: float = field(default_factory=time.perf_counter)


class _SeededSampler:
    """Logits processor that samples each row with its own generator and forces that token.

    ``generate`` then runs greedily over the forced (one-hot) scores, so sampling never touches
    torch's global RNG and does not depend on the batch composition.
    """

    def __init__(self, generators: list[torch.Generator], temperature: float, top_p: float) -> None:
        self.generators = generators
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float() / self.temperature
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            keep = sorted_p.cumsum(-1) - sorted_p < self.top_p  # always keeps the top token
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
            probs = probs / probs.sum(-1, keepdim=True)
        forced = torch.full_like(scores, float("-inf"))
        for i, g in enumerate(self.generators):
            tok = int(torch.multinomial(probs[i].cpu(), 1, generator=g).item())
            forced[i, tok] = 0.0
        return forced


def _seed_from(text: str, params: GenParams) -> int:
    digest = hashlib.sha256(canonical_json({"p": text, "k": params.key_dict()}).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class TransformersClient(BaseLLMClient):
    """``LLMClient`` over a local ``transformers`` causal LM and its tokenizer.

    Args:
        model, tok: a causal LM (e.g. from :func:`lm_kit.loading.load_model`) and its tokenizer.
        max_batch: most requests per ``generate`` call.
        window_ms: how long the worker waits for more requests before starting a batch.
        name: the model name in usage rows and cache keys (default: the config's name_or_path).
        chat_template: a Jinja chat template for tokenizers that have none.
        cache_dir, cache_mode: optional disk cache, as for the HTTP client.
    """

    json_modes = ("prompt",)

    def __init__(
        self,
        model: Any,
        tok: Any,
        *,
        max_batch: int = 16,
        window_ms: float = 20.0,
        name: str | None = None,
        chat_template: str | None = None,
        cache_dir: str | Path | None = None,
        cache_mode: CacheMode = "use",
        meter: UsageMeter | None = None,
    ) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, numbers.Integral):
            raise TypeError(f"max_batch must be an int, got {max_batch!r}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if window_ms < 0:
            raise ValueError(f"window_ms must be >= 0, got {window_ms}")
        if not callable(getattr(model, "generate", None)) or getattr(model, "config", None) is None:
            raise TypeError(
                f"TransformersClient needs a causal LM with a generate() method (e.g. from "
                f"load_model(spec) with head=True), got {type(model).__name__}"
            )
        if not callable(tok) or not hasattr(tok, "eos_token"):
            raise TypeError(
                f"TransformersClient needs the model's Hugging Face tokenizer, got {type(tok).__name__}"
            )
        if cache_dir is None and cache_mode not in CACHE_MODES:
            raise ValueError(
                f"unknown cache mode {cache_mode!r}; use one of {', '.join(CACHE_MODES)}"
            )
        super().__init__(meter)
        self.hf_model = model
        self.tok = tok
        self.max_batch = max_batch
        self.window_s = window_ms / 1000.0
        self.model = name or str(getattr(model.config, "name_or_path", "") or type(model).__name__)
        self.chat_template = chat_template
        if getattr(tok, "pad_token_id", None) is None:
            if tok.eos_token is None:
                raise ValueError(
                    "the tokenizer has neither a pad nor an EOS token; set tok.pad_token first"
                )
            log.info("tokenizer has no pad token; using EOS %r as pad", tok.eos_token)
            tok.pad_token = tok.eos_token
        self.pad_token_id = int(tok.pad_token_id)
        eos = getattr(model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = tok.eos_token_id
        self.eos_ids: set[int] = set(
            eos if isinstance(eos, list) else [eos] if eos is not None else []
        )
        self.cache = ResponseCache(cache_dir, cache_mode) if cache_dir is not None else None
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches_run = 0

    def __repr__(self) -> str:
        return f"TransformersClient(model={self.model!r}, max_batch={self.max_batch}, window_ms={self.window_s * 1000:g})"

    # -- prompt building -------------------------------------------------------------------------
    def render_chat(self, messages: list[Message]) -> str:
        template = self.chat_template or getattr(self.tok, "chat_template", None)
        if not template:
            raise ValueError(
                f"tokenizer of {self.model!r} has no chat template, so chat() cannot format messages. "
                "Fix: pass TransformersClient(..., chat_template='<jinja>') or use complete(prompt)."
            )
        return self.tok.apply_chat_template(
            [m.to_dict() for m in messages],
            tokenize=False,
            add_generation_prompt=True,
            chat_template=template,
        )

    async def _chat(
        self, messages: list[Message], params: GenParams, json_mode: str | None = None
    ) -> Completion:
        text = self.render_chat(messages)
        return await self._submit(
            "chat", text, False, params, messages=[m.to_dict() for m in messages]
        )

    async def _complete(self, prompt: str, params: GenParams) -> Completion:
        return await self._submit("completions", prompt, True, params, prompt=prompt)

    # -- queue ---------------------------------------------------------------------------------------
    async def _submit(
        self,
        endpoint: str,
        text: str,
        add_special: bool,
        params: GenParams,
        *,
        messages: list[dict[str, str]] | None = None,
        prompt: str | None = None,
    ) -> Completion:
        stage_name = current_stage()
        key = fields = None
        if self.cache is not None:
            fields = cache_key_fields(
                endpoint=endpoint,
                base_url=f"local://{self.model}",
                model=self.model,
                params=params.key_dict(),
                messages=messages,
                prompt=prompt,
            )
            key = key_of(fields)
            hit = self.cache.get(key)
            if hit is not None:
                self._record(hit, stage_name)
                return hit
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run_worker())
        fut: asyncio.Future[Completion] = loop.create_future()
        assert self._queue is not None
        self._queue.put_nowait(_Job(text, add_special, params, _seed_from(text, params), fut))
        comp = await fut
        if self.cache is not None and key is not None and fields is not None:
            self.cache.put(key, fields, comp)
        self._record(comp, stage_name)
        return comp

    def _record(self, comp: Completion, stage_name: str) -> None:
        self._meter.record(
            self.model,
            prompt_tokens=comp.prompt_tokens,
            completion_tokens=comp.completion_tokens,
            from_cache=comp.from_cache,
            latency_s=comp.latency_s,
            stage_name=stage_name,
        )

    async def _run_worker(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            jobs = [await queue.get()]
            deadline = time.perf_counter() + self.window_s
            while True:
                remaining = deadline - time.perf_counter()
                try:
                    jobs.append(
                        queue.get_nowait()
                        if remaining <= 0
                        else await asyncio.wait_for(queue.get(), remaining)
                    )
                except (TimeoutError, asyncio.QueueEmpty):
                    break
            groups: dict[str, list[_Job]] = {}
            for job in jobs:
                if not job.future.done():  # cancelled while queued: skip
                    groups.setdefault(job.params.group_key(), []).append(job)
            for group in groups.values():
                for i in range(0, len(group), self.max_batch):
                    chunk = [j for j in group[i : i + self.max_batch] if not j.future.done()]
                    if not chunk:
                        continue
                    await settle_in_thread(chunk, self._generate)

    async def aclose(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._worker
        self._worker = None

    # -- generation (runs in a worker thread) ------------------------------------------------
    @torch.no_grad()
    def _generate(self, jobs: list[_Job]) -> list[Completion]:
        params = jobs[0].params
        tok = self.tok
        add_special = jobs[0].add_special_tokens
        same_special = all(j.add_special_tokens == add_special for j in jobs)
        if not same_special:  # chat and completion never share a group key in practice
            return [c for j in jobs for c in self._generate([j])]
        enc = tok(
            [j.prompt_text for j in jobs],
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=add_special,
        )
        device = next(self.hf_model.parameters()).device
        input_ids = enc["input_ids"].to(device)
        mask = enc["attention_mask"].to(device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "do_sample": False,
            "pad_token_id": self.pad_token_id,
            "return_dict_in_generate": True,
            "output_logits": params.logprobs,
        }
        if self.eos_ids:
            kwargs["eos_token_id"] = sorted(self.eos_ids)
        if params.temperature > 0:
            gens = []
            for j in jobs:
                g = torch.Generator(device="cpu")
                g.manual_seed(j.seed)
                gens.append(g)
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList(
                [_SeededSampler(gens, params.temperature, params.top_p)]
            )
        if params.stop:
            kwargs["stop_strings"] = list(params.stop)
            kwargs["tokenizer"] = tok
        out = self.hf_model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        new_ids = out.sequences[:, input_ids.shape[1] :].cpu()
        logps = None
        if params.logprobs:
            logps = torch.stack([s.float() for s in out.logits], dim=1).log_softmax(-1).cpu()
        results = []
        for row, _job in enumerate(jobs):
            results.append(self._finish_row(row, new_ids[row], logps, int(mask[row].sum()), params))
        self.batches_run += 1
        return results

    def _finish_row(
        self,
        row: int,
        ids: torch.Tensor,
        logps: torch.Tensor | None,
        n_prompt: int,
        params: GenParams,
    ) -> Completion:
        tok = self.tok
        ids_l = ids.tolist()
        finish = "length"
        n = len(ids_l)
        for i, t in enumerate(ids_l):
            if t in self.eos_ids:
                n, finish = i, "stop"
                break
        gen = ids_l[:n]
        pieces = [tok.decode([t], skip_special_tokens=False) for t in gen]
        text = tok.decode(gen, skip_special_tokens=True)
        if params.stop:
            cuts = [text.find(s) for s in params.stop if s and text.find(s) != -1]
            if cuts:
                cut = min(cuts)
                text = text[:cut]
                finish = "stop"
                # keep the tokens whose text starts before the cut
                acc, keep = 0, 0
                for p in pieces:
                    if acc >= cut:
                        break
                    acc += len(p)
                    keep += 1
                gen, pieces = gen[:keep], pieces[:keep]
        logprobs = None
        if params.logprobs and logps is not None:
            logprobs = []
            k = params.top_logprobs
            for i, (t, piece) in enumerate(zip(gen, pieces, strict=True)):
                dist = logps[row, i]
                top: dict[str, float] = {}
                if k:
                    vals, idx = dist.topk(k)
                    for v, ti in zip(vals.tolist(), idx.tolist(), strict=True):
                        top.setdefault(tok.decode([ti], skip_special_tokens=False), float(v))
                logprobs.append(TokenLogprob(piece, float(dist[t]), top, token_id=int(t)))
        return Completion(
            text=text,
            finish_reason=finish,
            logprobs=logprobs,
            prompt_tokens=n_prompt,
            completion_tokens=len(gen),
            attempts=1,
            model=self.model,
            raw={"token_ids": gen},
        )
