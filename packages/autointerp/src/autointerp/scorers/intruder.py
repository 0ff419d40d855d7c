from __future__ import annotations

import asyncio
import math

import numpy as np
from lm_kit.llm import GenParams, LLMClient, Message

from autointerp.bootstrap import bootstrap_mean
from autointerp.errors import check_int
from autointerp.format import n_highlight_runs, render
from autointerp.llm import safe_chat
from autointerp.parse import parse_response_index
from autointerp.rng import make_rng
from autointerp.schema import Explanation, LatentExamples, Prediction, ScoreResult
from autointerp.scorers.base import precheck, register
from autointerp.scorers.fuzzing import fake_mask, positive_mask, run_lengths

SYSTEM = (
    "You will see {k} numbered text examples with some tokens wrapped in << >>. In all but one of them "
    "the highlighted tokens share a common pattern; one example is an intruder whose highlights do not "
    "fit. Find the intruder. Think briefly if needed, then end with a line of the form\n"
    "[RESPONSE]: <number of the intruder example, counting from 0>"
)


@register("intruder", uses_explanation=False)
class IntruderScorer:
    """Explanation-free: one trial per negative (up to ``n_intruder_trials``): ``intruder_shown``
    same-quantile activating windows + 1 negative with fake highlights matching the mean real count.
    Accuracy (chance 1/(shown+1)); failures are counted separately, never as wrong answers."""

    def __init__(
        self,
        client: LLMClient,
        n_intruder_trials: int = 20,
        intruder_shown: int = 4,
        bootstrap_b: int = 1000,
        seed: int = 0,
        **_: object,
    ) -> None:
        if intruder_shown < 3:
            raise ValueError(
                f"intruder_shown must be >= 3 (got {intruder_shown}); fewer makes the task ill-posed"
            )
        check_int("intruder scorer", "n_intruder_trials", n_intruder_trials, 1)
        check_int("intruder scorer", "bootstrap_b", bootstrap_b, 0, "0 turns the CI off")
        self.client = client
        self.n_trials = n_intruder_trials
        self.shown = intruder_shown
        self.b = bootstrap_b
        self.seed = seed
        self.params = GenParams(temperature=0.0, max_tokens=100)

    async def score(self, ex: LatentExamples, expl: Explanation) -> ScoreResult:
        pre = precheck(ex, expl, self.name, "accuracy", False)
        if pre is not None:
            return pre
        rng = make_rng(self.seed, self.name, ex.latent, "trials")
        by_q: dict[int, list] = {}
        for w in ex.test:
            by_q.setdefault(w.quantile or 0, []).append(w)
        pool = list(ex.test)
        masks = [positive_mask(w, ex.a_max) for w in pool]
        mean_runs = (
            max(1, round(float(np.mean([n_highlight_runs(m) for m in masks])))) if masks else 1
        )
        lens = [r for m in masks for r in run_lengths(m)] or [1]
        trials = []
        for t, neg in enumerate(ex.negatives[: self.n_trials]):
            qs = [q for q, ws in by_q.items() if len(ws) >= self.shown]
            if qs:
                q = qs[int(rng.integers(len(qs)))]
                acts = [
                    by_q[q][int(i)] for i in rng.choice(len(by_q[q]), self.shown, replace=False)
                ]
            elif (
                len(pool) >= self.shown
            ):  # missing quantile: fall back to any activating windows, flagged
                acts = [pool[int(i)] for i in rng.choice(len(pool), self.shown, replace=False)]
            else:
                break
            texts = [render(w.tokens, positive_mask(w, ex.a_max)) for w in acts]
            fake = render(neg.tokens, fake_mask(len(neg.tokens), mean_runs, lens, rng))
            pos = int(rng.integers(self.shown + 1))
            texts.insert(pos, fake)
            trials.append((t, pos, texts))
        if not trials:
            return ScoreResult(
                latent=ex.latent,
                scorer=self.name,
                explainer=expl.explainer,
                metric="accuracy",
                value=None,
                flags=["low_support"],
            )

        async def one(texts):
            body = "\n".join(f"Example {i}: {x}" for i, x in enumerate(texts))
            msgs = [Message.system(SYSTEM.format(k=len(texts))), Message.user(body)]
            out = await safe_chat(self.client, msgs, self.params, "score:intruder")
            if not out.ok:
                return None, 0, 0, out.error
            c = out.completion
            k = parse_response_index(c.text, len(texts))
            if k is None:
                return (
                    None,
                    c.prompt_tokens,
                    c.completion_tokens,
                    f"no [RESPONSE]: k in {c.text[:80]!r}",
                )
            return k, c.prompt_tokens, c.completion_tokens, None

        outs = await asyncio.gather(*(one(texts) for _, _, texts in trials))
        preds, correct, errors = [], [], []
        pt = ct = 0
        for (t, pos, _), (k, p, c, err) in zip(trials, outs, strict=True):
            pt, ct = pt + p, ct + c
            if k is None:
                preds.append(Prediction(item=t, label=pos, kind="trial", failed=True, error=err))
                errors.append(err)
            else:
                preds.append(Prediction(item=t, label=pos, kind="trial", pred=k))
                correct.append(float(k == pos))
        n_failed = len(trials) - len(correct)
        value = float(np.mean(correct)) if correct else math.nan
        lo, hi = (
            bootstrap_mean(
                np.array(correct), make_rng(self.seed, self.name, ex.latent, "bootstrap"), self.b
            )
            if correct and self.b
            else (math.nan, math.nan)
        )
        coverage = len(correct) / len(trials)
        flags = ["insufficient"] if coverage < 0.8 else []
        return ScoreResult(
            latent=ex.latent,
            scorer=self.name,
            explainer=expl.explainer,
            metric="accuracy",
            value=value,
            ci_lo=lo,
            ci_hi=hi,
            n_pos=len(trials),
            n_neg=0,
            n_failed=n_failed,
            coverage=coverage,
            flags=flags,
            metrics={"chance": 1 / (self.shown + 1)},
            prompt_tokens=pt,
            completion_tokens=ct,
            n_requests=len(trials),
            error=errors[0] if errors else None,
            predictions=preds,
        )
