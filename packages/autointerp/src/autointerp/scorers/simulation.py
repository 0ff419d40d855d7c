from __future__ import annotations

import asyncio
import math

import numpy as np
from lm_kit.llm import GenParams, LLMClient, Message

from autointerp.bootstrap import bootstrap_pearson
from autointerp.errors import check_int
from autointerp.format import sanitize
from autointerp.llm import safe_chat
from autointerp.logprobs import expected_value_slots
from autointerp.metrics import pearson_r
from autointerp.parse import parse_int_list
from autointerp.rng import make_rng
from autointerp.schema import Explanation, LatentExamples, Prediction, ScoreResult, Window
from autointerp.scorers.base import precheck, register
from autointerp.scorers.prompts import repair_messages

SYSTEM = (
    "We study neurons in a language model. Each neuron looks for one kind of thing in text. Given an "
    "explanation of a neuron's behaviour and a list of tokens (one per line, followed by a tab and "
    "'unknown'), predict the neuron's activation on every token on a 0-10 scale; most tokens are 0. "
    "Reply only with a JSON list of integers from 0 to 10, one per token line, in order."
)
_SHOT_TOKENS = [
    ("The", 0),
    (" kettle", 0),
    (" began", 0),
    (" to", 0),
    (" whistle", 9),
    (" loudly", 2),
]
_SHOT = (
    "Explanation of neuron 1 behavior: the main thing this neuron does is find sounds made by objects\n"
    + "\n".join(f"{sanitize(t)}\tunknown" for t, _ in _SHOT_TOKENS),
    "[" + ", ".join(str(v) for _, v in _SHOT_TOKENS) + "]",
)


def simulation_messages(z: str, tokens: list[str]) -> list[Message]:
    body = f"Explanation of neuron 2 behavior: the main thing this neuron does is find {z}\n"
    body += "\n".join(f"{sanitize(t)}\tunknown" for t in tokens)
    return [
        Message.system(SYSTEM),
        Message.user(_SHOT[0]),
        Message.assistant(_SHOT[1]),
        Message.user(body),
    ]


@register("simulation")
class SimulationScorer:
    """All-at-once simulation; per slot the expected value from logprobs (hard values otherwise);
    Pearson r over all tokens concatenated, overall / positives only; window-level bootstrap CI."""

    def __init__(
        self,
        client: LLMClient,
        n_sim_windows: int = 10,
        bootstrap_b: int = 1000,
        logprobs: bool = True,
        top_logprobs: int = 15,
        seed: int = 0,
        **_: object,
    ) -> None:
        check_int("simulation scorer", "n_sim_windows", n_sim_windows, 1)
        check_int("simulation scorer", "bootstrap_b", bootstrap_b, 0, "0 turns the CI off")
        self.client = client
        self.n = n_sim_windows
        self.b = bootstrap_b
        self.seed = seed
        self.params = GenParams(
            temperature=0.0,
            max_tokens=200,
            logprobs=logprobs,
            top_logprobs=min(20, top_logprobs) if logprobs else 0,
        )

    def _windows(self, ex: LatentExamples) -> list[Window]:
        pos = sorted(ex.test, key=lambda w: (w.quantile or 0, w.start))
        step = max(1, len(pos) // max(1, self.n))
        return pos[::step][: self.n] + ex.negatives[: self.n]

    async def _one(self, z: str, w: Window):
        msgs = simulation_messages(z, w.tokens)
        pt = ct = nreq = 0
        err = None
        ask = msgs
        for _attempt in range(2):  # a length mismatch gets one repair retry, then the window fails
            out = await safe_chat(self.client, ask, self.params, "score:simulation")
            nreq += 1
            if not out.ok:
                return None, False, pt, ct, nreq, out.error
            c = out.completion
            pt += c.prompt_tokens
            ct += c.completion_tokens
            hard = parse_int_list(c.text, len(w.tokens), set(range(11)))
            if hard is None:
                err = f"simulation slot mismatch (wanted {len(w.tokens)} values): {c.text[:80]!r}"
                ask = repair_messages(msgs, c.text, len(w.tokens), 0, 10)
                continue
            ev = expected_value_slots(c.logprobs, len(w.tokens)) if self.params.logprobs else None
            if ev is not None and not any(math.isnan(x) for x in ev):
                return np.array(ev), True, pt, ct, nreq, None
            return np.array(hard, dtype=float), False, pt, ct, nreq, None
        return None, False, pt, ct, nreq, err

    async def score(self, ex: LatentExamples, expl: Explanation) -> ScoreResult:
        pre = precheck(ex, expl, self.name, "pearson_r", True)
        if pre is not None:
            return pre
        wins = self._windows(ex)
        outs = await asyncio.gather(*(self._one(expl.text, w) for w in wins))
        groups, groups_pos, preds = [], [], []
        flags: set[str] = set()
        n_failed = pt = ct = nreq = 0
        errors = []
        for i, (w, (sim, used_lp, p, c, r, err)) in enumerate(zip(wins, outs, strict=True)):
            pt, ct, nreq = pt + p, ct + c, nreq + r
            if sim is None:
                n_failed += 1
                errors.append(err)
                preds.append(
                    Prediction(item=i, label=w.max_act, kind=w.kind, failed=True, error=err)
                )
                continue
            if not used_lp:
                flags.add("hard_values")
            true = np.asarray(w.acts, dtype=float)
            groups.append((sim, true))
            if w.kind == "test":
                groups_pos.append((sim, true))
            preds.append(
                Prediction(
                    item=i,
                    label=w.max_act,
                    kind=w.kind,
                    pred=float(sim.max()),
                    prob=float(sim.mean()),
                )
            )
        value = lo = hi = math.nan
        metrics: dict[str, float | None] = {}
        if groups:
            x = np.concatenate([g[0] for g in groups])
            y = np.concatenate([g[1] for g in groups])
            value = pearson_r(x, y)
            if math.isnan(value):
                flags.add("constant_prediction")
            elif self.b:
                lo, hi = bootstrap_pearson(
                    groups, make_rng(self.seed, self.name, ex.latent, "bootstrap"), self.b
                )
            if groups_pos:
                rp = pearson_r(
                    np.concatenate([g[0] for g in groups_pos]),
                    np.concatenate([g[1] for g in groups_pos]),
                )
                metrics["pearson_r_positives"] = None if math.isnan(rp) else rp
        else:
            flags.add("all_failed")
        coverage = (len(wins) - n_failed) / max(1, len(wins))
        if coverage < 0.8:
            flags.add("insufficient")
        return ScoreResult(
            latent=ex.latent,
            scorer=self.name,
            explainer=expl.explainer,
            metric="pearson_r",
            value=value,
            ci_lo=lo,
            ci_hi=hi,
            n_pos=sum(1 for w in wins if w.kind == "test"),
            n_neg=sum(1 for w in wins if w.kind != "test"),
            n_failed=n_failed,
            coverage=coverage,
            flags=sorted(flags),
            metrics=metrics,
            prompt_tokens=pt,
            completion_tokens=ct,
            n_requests=nreq,
            error=errors[0] if errors else None,
            predictions=preds,
        )
