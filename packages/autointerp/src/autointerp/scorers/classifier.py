"""Shared machinery of the LLM classification scorers (detection, fuzzing)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import numpy as np
from lm_kit.llm import GenParams, LLMClient

from autointerp.bootstrap import bootstrap_auroc, bootstrap_balanced_accuracy
from autointerp.errors import check_int
from autointerp.llm import safe_chat
from autointerp.logprobs import binary_slot_probs
from autointerp.metrics import auroc, classification_metrics, delong_se
from autointerp.parse import parse_int_list
from autointerp.rng import make_rng
from autointerp.schema import (
    NEGATIVE_KINDS,
    Explanation,
    LatentExamples,
    Prediction,
    ScoreResult,
    Window,
)
from autointerp.scorers.base import precheck
from autointerp.scorers.prompts import check_fewshot, classifier_messages, repair_messages
from autointerp.sequential import SequentialRule, should_stop


class LogprobsRequiredError(ValueError):
    pass


@dataclass
class Item:
    idx: int
    window: Window
    label: int
    kind: str
    text: str


def order_items(
    pos: list[Item], neg: list[Item], rng: np.random.Generator, per_round: int
) -> list[Item]:
    """Interleave so every block of ``per_round`` holds half positives (cycling over deciles) and
    half negatives (cycling over negative types); positions within a block are shuffled."""

    def cycle(items: list[Item], key) -> list[Item]:
        groups: dict[object, list[Item]] = {}
        for it in items:
            groups.setdefault(key(it), []).append(it)
        for g in groups.values():
            rng.shuffle(g)
        keys = sorted(groups, key=str)
        out: list[Item] = []
        while any(groups[k] for k in keys):
            for k in keys:
                if groups[k]:
                    out.append(groups[k].pop())
        return out

    p = cycle(pos, lambda it: it.window.quantile)
    n = cycle(neg, lambda it: it.kind)
    half = max(1, per_round // 2)
    out: list[Item] = []
    i = j = 0
    while i < len(p) or j < len(n):
        block = p[i : i + half] + n[j : j + half]
        i += half
        j += half
        rng.shuffle(block)
        out.extend(block)
    return out


class ClassifierScorer:
    kind = "detection"

    def __init__(
        self,
        client: LLMClient,
        n_per_prompt: int = 5,
        n_pos: int = 100,
        n_neg: int = 100,
        n_fewshot: int = 1,
        sequential: bool = True,
        rule: SequentialRule | None = None,
        bootstrap_b: int = 1000,
        logprobs: bool = True,
        top_logprobs: int = 5,
        require_logprobs: bool = False,
        max_tokens: int = 64,
        prompt_style: str = "spec",
        seed: int = 0,
        stage_name: str | None = None,
        **_: object,
    ) -> None:
        w = f"{getattr(self, 'name', self.kind)} scorer"
        check_int(w, "n_per_prompt", n_per_prompt, 1)
        check_int(w, "n_pos", n_pos, 1)
        check_int(w, "n_neg", n_neg, 1)
        check_fewshot(w, prompt_style, n_fewshot)
        check_int(w, "bootstrap_b", bootstrap_b, 0, "0 turns the bootstrap CI off")
        self.client = client
        self.n_per_prompt = n_per_prompt
        self.n_pos, self.n_neg = n_pos, n_neg
        self.n_fewshot = n_fewshot
        self.sequential = sequential
        self.rule = rule or SequentialRule()
        self.b = bootstrap_b
        self.require_logprobs = require_logprobs
        self.params = GenParams(
            temperature=0.0,
            max_tokens=max_tokens,
            logprobs=logprobs,
            top_logprobs=top_logprobs if logprobs else 0,
        )
        self.style = prompt_style
        self.seed = seed
        self.stage_name = stage_name or f"score:{self.kind}"

    # subclasses render the text of a window (and may add items)
    def make_items(
        self, ex: LatentExamples, rng: np.random.Generator
    ) -> tuple[list[Item], list[Item]]:
        raise NotImplementedError

    async def _ask(
        self, expl: str, batch: list[Item]
    ) -> tuple[list[int] | None, list[float] | None, int, int, int, str | None, list[str]]:
        msgs = classifier_messages(
            self.kind, self.style, expl, [it.text for it in batch], self.n_fewshot
        )
        pt = ct = nreq = 0
        err: str | None = None
        flags: list[str] = []
        ask = msgs
        for attempt in range(2):  # one repair retry, then the batch is marked failed
            out = await safe_chat(self.client, ask, self.params, self.stage_name)
            nreq += 1
            if not out.ok:
                return None, None, pt, ct, nreq, out.error, flags
            c = out.completion
            pt += c.prompt_tokens
            ct += c.completion_tokens
            labels = parse_int_list(c.text, len(batch), {0, 1})
            if labels is not None:
                probs = binary_slot_probs(c.logprobs, len(batch)) if self.params.logprobs else None
                if attempt:
                    flags.append("retried")
                return labels, probs, pt, ct, nreq, None, flags
            err = (
                f"unparseable or wrong-length answer (wanted {len(batch)} labels): {c.text[:120]!r}"
            )
            ask = repair_messages(msgs, c.text, len(batch))
        return None, None, pt, ct, nreq, err, flags

    async def score(self, ex: LatentExamples, expl: Explanation) -> ScoreResult:
        pre = precheck(ex, expl, self.name, "balanced_accuracy", True)
        if pre is not None:
            return pre
        if "dense" in ex.flags:
            return ScoreResult(
                latent=ex.latent,
                scorer=self.name,
                explainer=expl.explainer,
                metric="balanced_accuracy",
                value=None,
                flags=["dense"],
            )
        rng = make_rng(self.seed, self.name, ex.latent, "order")
        pos, neg = self.make_items(ex, rng)
        items = order_items(
            pos, neg, rng, self.rule.round_size if self.sequential else self.n_per_prompt * 2
        )
        preds: dict[int, Prediction] = {}
        tot_pt = tot_ct = tot_req = 0
        flags: set[str] = set()
        errors: list[str] = []
        stopped_at = None

        async def run_batch(batch: list[Item]) -> None:
            nonlocal tot_pt, tot_ct, tot_req
            labels, probs, pt, ct, nreq, err, fl = await self._ask(expl.text, batch)
            tot_pt += pt
            tot_ct += ct
            tot_req += nreq
            flags.update(fl)
            for k, it in enumerate(batch):
                if labels is None:
                    preds[it.idx] = Prediction(
                        item=it.idx, label=it.label, kind=it.kind, failed=True, error=err
                    )
                else:
                    p = None if probs is None or math.isnan(probs[k]) else probs[k]
                    preds[it.idx] = Prediction(
                        item=it.idx, label=it.label, kind=it.kind, pred=labels[k], prob=p
                    )
            if err:
                errors.append(err)

        def chunks(seq):
            return [seq[i : i + self.n_per_prompt] for i in range(0, len(seq), self.n_per_prompt)]  # noqa: E731

        if not self.sequential:
            await asyncio.gather(*(run_batch(b) for b in chunks(items)))
        else:
            rs = self.rule.round_size
            for n_rounds, r0 in enumerate(range(0, len(items), rs), start=1):
                await asyncio.gather(*(run_batch(b) for b in chunks(items[r0 : r0 + rs])))
                done = [p for p in preds.values() if not p.failed]
                y = np.array([p.label for p in done])
                yhat = np.array([p.pred for p in done])
                if len(done) and should_stop(self.rule, y, yhat, n_rounds) and r0 + rs < len(items):
                    stopped_at = r0 + rs
                    break
        return self._result(
            ex, expl, items, preds, tot_pt, tot_ct, tot_req, flags, errors, stopped_at
        )

    def _result(
        self, ex, expl, items, preds, pt, ct, nreq, flags, errors, stopped_at
    ) -> ScoreResult:
        plist = [preds[k] for k in sorted(preds)]
        ok = [p for p in plist if not p.failed]
        n_failed = len(plist) - len(ok)
        coverage = len(ok) / max(1, len(plist))
        y = np.array([p.label for p in ok], dtype=int)
        yhat = np.array([p.pred for p in ok], dtype=int)
        metrics: dict[str, float | None] = {}
        value = ci_lo = ci_hi = math.nan
        rng = make_rng(self.seed, self.name, ex.latent, "bootstrap")
        if len(ok) and y.any() and (~y.astype(bool)).any():
            m = classification_metrics(y, yhat)
            metrics.update(m)
            value = m["balanced_accuracy"]
            if self.b:
                ci_lo, ci_hi = bootstrap_balanced_accuracy(y, yhat, rng, self.b)
            probs = [p.prob for p in ok]
            if all(p is not None for p in probs):
                pr = np.array(probs, dtype=float)
                metrics["auroc"] = auroc(y, pr)
                metrics["auroc_delong_se"] = delong_se(y, pr)
                if self.b:
                    metrics["auroc_ci_lo"], metrics["auroc_ci_hi"] = bootstrap_auroc(
                        y, pr, rng, self.b
                    )
            else:
                metrics["auroc"] = math.nan
                flags.add("no_logprobs")
                if self.require_logprobs:
                    raise LogprobsRequiredError(
                        f"{self.name}: the backend returned no usable 0/1 logprobs for latent {ex.latent}; "
                        "use a backend with logprobs (local transformers, vLLM, OpenAI) or set require_logprobs=False"
                    )
            for kind in NEGATIVE_KINDS + ("fuzz_active",):
                sel = np.array([p.label == 1 or p.kind == kind for p in ok])
                if sel.any() and any(p.kind == kind for p in ok):
                    metrics[f"balanced_accuracy_{kind}"] = classification_metrics(
                        y[sel], yhat[sel]
                    )["balanced_accuracy"]
        elif not ok:
            flags.add("all_failed")
        elif not y.any():  # no metric without both classes: say which one is missing
            flags.add("no_positives")
        else:
            flags.add("no_negatives")
        if coverage < 0.8:
            flags.add("insufficient")
        return ScoreResult(
            latent=ex.latent,
            scorer=self.name,
            explainer=expl.explainer,
            metric="balanced_accuracy",
            value=value,
            ci_lo=ci_lo,
            ci_hi=ci_hi,
            n_pos=int(sum(1 for p in ok if p.label == 1)),
            n_neg=int(sum(1 for p in ok if p.label == 0)),
            n_failed=n_failed,
            coverage=coverage,
            stopped_at=stopped_at,
            flags=sorted(flags),
            metrics={
                k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
                for k, v in metrics.items()
            },
            prompt_tokens=pt,
            completion_tokens=ct,
            n_requests=nreq,
            error=errors[0] if errors else None,
            predictions=plist,
        )
